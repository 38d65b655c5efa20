// The read-token form, shared by the viewer and the map: asked once, or again after a 401.

import { setToken } from './api';
import { h } from './dom';

/** Replaces `root` with the form; `then` runs once a token is entered. */
export function askToken(root: HTMLElement, message: string, then: () => void): void {
  const input = h('input', { type: 'password', name: 'token', placeholder: 'rt_…', size: 40, autocomplete: 'off' });
  root.replaceChildren(
    h(
      'form',
      {
        class: 'token',
        onsubmit: (e: Event) => {
          e.preventDefault();
          setToken(input.value.trim());
          then();
        },
      },
      h('h2', {}, 'Read token'),
      h('p', {}, message),
      input,
      ' ',
      h('button', { type: 'submit' }, 'Open'),
    ),
  );
  input.focus();
}
