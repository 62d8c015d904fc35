// signin.js: the sign-in screen shared by the console and the demo client. A token is
// pasted (or, when the node runs `--demo`, picked with one click) and kept in this tab's
// sessionStorage, so a reload stays signed in and another tab may sign in as someone else.

import { h, tokenClaims } from '/assets/ui.js';

/**
 * Shows the sign-in form in `root` and resolves with a token whose role is one of
 * `roles`. `storageKey` remembers it for this tab.
 */
export function signIn(root, { roles, storageKey, config, title }) {
  const saved = sessionStorage.getItem(storageKey);
  if (saved && roles.includes(tokenClaims(saved)?.role)) return Promise.resolve(saved);
  return new Promise((resolve) => {
    const done = (token) => {
      sessionStorage.setItem(storageKey, token);
      root.replaceChildren();
      resolve(token);
    };
    const error = h('p', { class: 'error', role: 'alert', id: 'signin-error' });
    const input = h('textarea', {
      id: 'token',
      rows: 4,
      placeholder: 'eyJhbGciOiJIUzI1NiIs…',
      'aria-describedby': 'token-help',
    });
    const form = h(
      'form',
      {
        class: 'signin-form',
        onsubmit: (e) => {
          e.preventDefault();
          const token = input.value.trim();
          const claims = tokenClaims(token);
          if (!claims) {
            error.textContent = 'That is not a token (three base64 parts separated by dots).';
          } else if (!roles.includes(claims.role)) {
            error.textContent = `This page is for ${roles.join(' or ')} tokens; this one is for role “${claims.role}”.`;
          } else {
            done(token);
          }
        },
      },
      h('label', { for: 'token' }, 'Token'),
      input,
      h('p', { id: 'token-help', class: 'muted' }, 'Mint one with ', h('code', {}, 'chathub token'), '.'),
      h('button', { type: 'submit', class: 'primary' }, 'Sign in'),
      error,
    );
    const panel = h('section', { class: 'signin', 'aria-labelledby': 'signin-title' }, h('h1', { id: 'signin-title' }, title), form);
    root.replaceChildren(panel);
    if (config.demo) {
      fetch('/demo-tokens.json', { cache: 'no-store' })
        .then((r) => (r.ok ? r.json() : []))
        .then((people) => {
          const mine = people.filter((p) => roles.includes(p.role));
          if (!mine.length) return;
          const buttons = mine.map((p) =>
            h(
              'button',
              { type: 'button', class: 'demo-person', dataset: { person: p.id }, onclick: () => done(p.token) },
              `${p.name}`,
              h('span', { class: 'muted' }, ` ${p.role.replace('_', ' ')}`),
            ),
          );
          panel.insertBefore(
            h('div', { class: 'demo-signin' }, h('h2', {}, 'Demo sign-in'), h('div', { class: 'demo-people' }, buttons)),
            form,
          );
        })
        .catch(() => {});
    }
  });
}

/** Forgets this tab's token and reloads to the sign-in screen. */
export function signOut(storageKey) {
  sessionStorage.removeItem(storageKey);
  location.reload();
}
