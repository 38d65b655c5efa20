// The wire protocol's shared words, for the snippet and the viewer alike: event kinds, the
// server's error words, the errors after which resending cannot help, and why a live
// viewer's socket is closed. `tests/protocol_words.rs` checks this file against the Rust
// definitions (src/protocol/events.rs, src/error.rs), so the three cannot drift apart.

/** Event kinds: the first field of every `ev` row. */
export enum Kind {
  Page = 0,
  Move = 1,
  Click = 2,
  Scroll = 3,
  Resize = 4,
  Visibility = 5,
  Input = 6,
  Touch = 7,
  Gps = 8,
  Custom = 9,
  Layout = 10,
  Dom = 11,
}

/** Every word an ingest `error` frame or fallback answer may carry. */
export const INGEST_ERRORS = [
  'key_required',
  'bad_key',
  'origin_not_allowed',
  'hello_required',
  'hello_timeout',
  'unexpected_hello',
  'malformed_frame',
  'invalid_field',
  'unknown_event_kind',
  'unsupported_version',
  'frame_too_large',
  'batch_too_large',
  'rate_limited',
  'dom_disabled',
  'dom_limit',
  'idle_timeout',
  'not_reading',
  'body_timeout',
  'busy',
  'store_unavailable',
  'shutting_down',
  'internal',
];

/** Ingest errors after which resending cannot help. The server marks them `fatal: true` in
 * the error frame and answer, and the snippet stops for this page on that flag (it needs no
 * copy of this list). After `dom_disabled` and `dom_limit` it stops only full-page recording,
 * drops those events and goes on. */
export const FATAL = [
  'key_required',
  'bad_key',
  'origin_not_allowed',
  'malformed_frame',
  'invalid_field',
  'unknown_event_kind',
  'unsupported_version',
  'frame_too_large',
  'batch_too_large',
];

/** Words of the read API's error answers (`{"error": word, "message": …}`). */
export const API_ERRORS = [
  'unauthorized',
  'bad_token',
  'other_site',
  'not_found',
  'method_not_allowed',
  'length_required',
  'bad_request',
  'frame_too_large',
  'store_unavailable',
  'invalid_position',
  'too_many_positions',
];

/** Why the server closed a live viewer's socket (the close frame's reason). */
export const VIEWER_CLOSE = ['viewer_too_slow', 'closed', 'shutting_down'];
