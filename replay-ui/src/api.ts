// The read API: the token (from ?token= or asked once, kept in localStorage), JSON calls, the
// streamed events of a session, and the live socket.

const KEY = 'spoor:token';

export class Unauthorized extends Error {}

export function token(): string | null {
  const q = new URLSearchParams(location.search).get('token');
  if (q) {
    localStorage.setItem(KEY, q);
    const u = new URL(location.href);
    u.searchParams.delete('token');
    history.replaceState(null, '', u.pathname + u.search);
  }
  return localStorage.getItem(KEY);
}

export function setToken(t: string | null): void {
  if (t) localStorage.setItem(KEY, t);
  else localStorage.removeItem(KEY);
}

async function call(path: string, method = 'GET', body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${token() || ''}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) throw new Unauthorized();
  if (!r.ok) {
    // The server's errors are `{"error": code, "message": …}`: show the message. A token
    // that is not a read token (403 `bad_token`) is asked for again, like a missing one.
    const body = await r.json().catch(() => null);
    if (body?.error === 'bad_token') throw new Unauthorized();
    throw new Error(body?.message ? `${body.message} (HTTP ${r.status})` : `${path}: HTTP ${r.status}`);
  }
  return r;
}

export async function json<T>(path: string): Promise<T> {
  return (await call(path)).json();
}

/** Sends `body` as JSON (`POST`, `PUT`) and returns the answer's JSON; `DELETE` without a
 * body returns nothing. Errors carry the server's message. */
export async function send<T>(path: string, method: string, body?: unknown): Promise<T | null> {
  const r = await call(path, method, body);
  return r.status === 204 ? null : r.json();
}

/** Saves what `path` answers as a file (the browser's download), with the token sent as a
 * header rather than put in a link. */
export async function download(path: string, name: string): Promise<void> {
  const blob = await (await call(path)).blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Deletes what `path` names (a session, a device), after the user confirms `question`.
 * Resolves `true` once it is gone, `false` if the user said no. */
export async function removeAfterConfirm(path: string, question: string): Promise<boolean> {
  if (!confirm(question)) return false;
  await call(path, 'DELETE');
  return true;
}

export interface Chunk {
  seq: number;
  t0: number;
  rx: number;
  ev: unknown[][];
  rage?: number[];
}

/** Streams a session's chunks, calling `each` as every line arrives. */
export async function stream(path: string, each: (c: Chunk) => void): Promise<void> {
  const r = await call(path);
  const reader = r.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line) each(JSON.parse(line));
    }
  }
  if (buf.trim()) each(JSON.parse(buf));
}

/** Opens a read WebSocket. The token goes in a header to buy a one-use ticket, and only the
 * ticket goes in the socket's URL (URLs end up in proxy and access logs). */
export async function openSocket(path: string, params: Record<string, string>): Promise<WebSocket> {
  const { ticket } = await (await call('/api/tickets', 'POST')).json();
  const u = new URL(path, location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [k, v] of Object.entries(params)) if (v) u.searchParams.set(k, v);
  u.searchParams.set('ticket', ticket);
  return new WebSocket(u.href);
}

/** Follows a session live; returns a function that stops following. */
export function live(sid: string, site: string, each: (c: Chunk) => void, closed: () => void): () => void {
  let ws: WebSocket | null = null;
  let stopped = false;
  openSocket(`/api/sessions/${encodeURIComponent(sid)}/live`, { site }).then((s) => {
    ws = s;
    if (stopped) return s.close();
    s.onmessage = (m) => each(JSON.parse(m.data));
    s.onclose = closed;
  }, closed);
  return () => {
    stopped = true;
    ws?.close();
  };
}
