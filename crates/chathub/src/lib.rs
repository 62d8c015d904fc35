//! The chathub binary's library side: what the binary adds to a gateway node and that
//! tests and fuzz targets load too.
//!
//! # Layout
//! - [`demo`]: the demo tenant of `chathub serve --demo`, as a gateway seed.
//! - `main.rs` (the binary): flags, environment and config file, `serve`, `token`.

pub mod demo;
