//! `serve --config FILE`: every `serve` setting may also come from a TOML file whose keys
//! are the flag names (`max-text-bytes = 4096`, `allowed-origins = ["https://a.example"]`,
//! `demo = true`). Precedence: command-line flag, then environment variable, then the
//! file, then the default.
//!
//! The file is turned into extra command-line arguments before clap parses, so every
//! value is validated by exactly the same code as a flag, and a new flag is available in
//! the file without any change here.

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use std::ffi::OsString;

/// The flag naming the file, and its environment variable.
const FLAG: &str = "config";
const ENV: &str = "CHATHUB_CONFIG";

/// Returns `args` with the settings of the config file (if `serve` is given one) inserted
/// after `serve`, skipping every setting given as a flag or set in the environment.
pub(crate) fn expand<C: CommandFactory>(args: Vec<OsString>) -> Result<Vec<OsString>> {
    let Some(serve_at) = args.iter().position(|a| a == "serve") else {
        return Ok(args);
    };
    let path = match find_flag_value(&args[serve_at + 1..], FLAG) {
        Some(p) => p,
        None => match std::env::var_os(ENV) {
            Some(p) if !p.is_empty() => p,
            _ => return Ok(args),
        },
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the config file {}", path.to_string_lossy()))?;
    let extra = file_arguments::<C>(&text, &args[serve_at + 1..])
        .with_context(|| format!("in the config file {}", path.to_string_lossy()))?;
    let mut out = args;
    out.splice(serve_at + 1..serve_at + 1, extra);
    Ok(out)
}

/// The value of `--name V` or `--name=V` among `args`.
fn find_flag_value(args: &[OsString], name: &str) -> Option<OsString> {
    let long = format!("--{name}");
    let with_eq = format!("--{name}=");
    let mut iter = args.iter();
    while let Some(a) = iter.next() {
        let a = a.to_string_lossy();
        if a == long {
            return iter.next().cloned();
        }
        if let Some(v) = a.strip_prefix(&with_eq) {
            return Some(v.into());
        }
    }
    None
}

/// The arguments the file adds, given the arguments already on the command line.
fn file_arguments<C: CommandFactory>(text: &str, given: &[OsString]) -> Result<Vec<OsString>> {
    let table: toml::Table = toml::from_str(text).context("not valid TOML")?;
    let command = C::command();
    let serve = command
        .find_subcommand("serve")
        .context("no serve subcommand")?;
    let mut out = Vec::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(name.as_str()) && name != FLAG)
            .with_context(|| {
                format!(
                    "unknown setting `{key}` (the keys are the flags of `chathub serve --help`)"
                )
            })?;
        let on_command_line = given.iter().any(|a| {
            let a = a.to_string_lossy();
            a == format!("--{name}") || a.starts_with(&format!("--{name}="))
        });
        let in_environment = arg
            .get_env()
            .is_some_and(|env| std::env::var_os(env).is_some_and(|v| !v.is_empty()));
        if on_command_line || in_environment {
            continue;
        }
        let takes_value = arg.get_action().takes_values();
        match (value, takes_value) {
            (toml::Value::Boolean(on), false) => {
                if on {
                    out.push(format!("--{name}").into());
                }
            }
            (toml::Value::Boolean(_), true) => {
                bail!("`{key}` takes a value, not true/false")
            }
            (_, false) => bail!("`{key}` is a switch: write `{key} = true` or `false`"),
            (toml::Value::String(s), true) => push(&mut out, &name, s),
            (toml::Value::Integer(i), true) => push(&mut out, &name, i.to_string()),
            (toml::Value::Float(f), true) => push(&mut out, &name, f.to_string()),
            (toml::Value::Array(items), true) => {
                let parts: Result<Vec<String>> = items
                    .into_iter()
                    .map(|v| match v {
                        toml::Value::String(s) => Ok(s),
                        toml::Value::Integer(i) => Ok(i.to_string()),
                        other => bail!(
                            "`{key}`: list items must be strings, not a {}",
                            other.type_str()
                        ),
                    })
                    .collect();
                push(&mut out, &name, parts?.join(","));
            }
            (other, true) => bail!("`{key}`: unsupported value (a {})", other.type_str()),
        }
    }
    Ok(out)
}

fn push(out: &mut Vec<OsString>, name: &str, value: String) {
    // `--name=value`, so a value starting with `-` is not read as a flag.
    out.push(format!("--{name}={value}").into());
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }
    #[derive(Subcommand)]
    enum Cmd {
        Serve {
            #[arg(long)]
            config: Option<String>,
            #[arg(long, env = "CHATHUB_TEST_ONLY_PAGE", default_value_t = 50)]
            max_page: usize,
            #[arg(long)]
            demo: bool,
            #[arg(long, value_delimiter = ',')]
            allowed_origins: Vec<String>,
            #[arg(long, default_value = "x")]
            secret: String,
        },
    }

    fn args(given: &[&str], file: &str) -> Result<Vec<String>> {
        let given: Vec<OsString> = given.iter().map(OsString::from).collect();
        Ok(file_arguments::<Cli>(file, &given)?
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect())
    }

    #[test]
    fn file_values_become_flags_unless_given() {
        let file = "max_page = 7\ndemo = true\nallowed-origins = [\"https://a\", \"https://b\"]\nsecret = \"-dash\"\n";
        let mut got = args(&[], file).expect("valid");
        got.sort();
        assert_eq!(
            got,
            [
                "--allowed-origins=https://a,https://b",
                "--demo",
                "--max-page=7",
                "--secret=-dash"
            ]
        );
        // A flag on the command line wins over the file.
        let got = args(&["--max-page", "9"], "max-page = 7").expect("valid");
        assert!(got.is_empty());
        let got = args(&["--max-page=9"], "max-page = 7").expect("valid");
        assert!(got.is_empty());
        assert!(args(&[], "demo = false").expect("valid").is_empty());
    }

    #[test]
    fn bad_files_are_explained() {
        let err = |file: &str| format!("{:#}", args(&[], file).expect_err("refused"));
        assert!(err("no-such = 1").contains("unknown setting `no-such`"));
        assert!(err("config = \"x\"").contains("unknown setting"));
        assert!(err("demo = 3").contains("is a switch"));
        assert!(err("max-page = true").contains("takes a value"));
        assert!(err("max-page = [").contains("not valid TOML"));
    }

    #[test]
    fn the_full_command_line_is_parsed_with_the_file() {
        let dir = std::env::temp_dir().join(format!("chathub-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("chathub.toml");
        std::fs::write(&path, "max-page = 7\ndemo = true\n").expect("write");
        let argv: Vec<OsString> = [
            "chathub",
            "serve",
            "--config",
            path.to_str().expect("utf-8"),
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let expanded = expand::<Cli>(argv).expect("expands");
        let Cmd::Serve { max_page, demo, .. } = Cli::parse_from(expanded).cmd;
        assert_eq!((max_page, demo), (7, true));
        std::fs::remove_dir_all(&dir).ok();
    }
}
