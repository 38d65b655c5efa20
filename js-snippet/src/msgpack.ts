// MessagePack encoder and decoder: the subset spoor's protocol uses, byte-compatible with
// rmp-serde (the server's encoder): integers in their smallest form (unsigned markers for
// non-negative values), other numbers as float64, strings as UTF-8 with str8/16/32.
// test/fixtures/msgpack.json holds vectors that both this file and the Rust tests check.

export type Value = null | undefined | boolean | number | string | Value[] | { [k: string]: Value };

const utf8 = new TextEncoder();

export function encode(v: Value): Uint8Array<ArrayBuffer> {
  const out: number[] = [];
  write(out, v);
  return Uint8Array.from(out);
}

function u(out: number[], v: number, bytes: number): void {
  for (let i = bytes - 1; i >= 0; i--) out.push(Math.floor(v / 2 ** (8 * i)) & 0xff);
}

function len(out: number[], n: number, fix: number, fixMax: number, m8: number, m16: number, m32: number): void {
  if (n < fixMax) out.push(fix | n);
  else if (m8 && n < 256) out.push(m8, n);
  else if (n < 65536) { out.push(m16); u(out, n, 2); }
  else { out.push(m32); u(out, n, 4); }
}

function write(out: number[], v: Value): void {
  if (v == null) out.push(0xc0);
  else if (v === true) out.push(0xc3);
  else if (v === false) out.push(0xc2);
  else if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) {
      if (v >= 0) {
        if (v < 128) out.push(v);
        else if (v < 256) out.push(0xcc, v);
        else if (v < 65536) { out.push(0xcd); u(out, v, 2); }
        else if (v < 2 ** 32) { out.push(0xce); u(out, v, 4); }
        else { out.push(0xcf); u(out, v, 8); }
      } else if (v >= -32) out.push(v & 0xff);
      else if (v >= -128) out.push(0xd0, v & 0xff);
      else if (v >= -32768) { out.push(0xd1); u(out, v + 65536, 2); }
      else if (v >= -(2 ** 31)) { out.push(0xd2); u(out, v + 2 ** 32, 4); }
      else { out.push(0xd3); u(out, v + 2 ** 64, 8); }
    } else if (Number.isFinite(v)) {
      const b = new DataView(new ArrayBuffer(8));
      b.setFloat64(0, v);
      out.push(0xcb);
      for (let i = 0; i < 8; i++) out.push(b.getUint8(i));
    } else out.push(0xc0);
  } else if (typeof v === 'string') {
    const b = utf8.encode(v);
    len(out, b.length, 0xa0, 32, 0xd9, 0xda, 0xdb);
    for (let i = 0; i < b.length; i++) out.push(b[i]);
  } else if (Array.isArray(v)) {
    len(out, v.length, 0x90, 16, 0, 0xdc, 0xdd);
    for (const x of v) write(out, x);
  } else {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined);
    len(out, keys.length, 0x80, 16, 0, 0xde, 0xdf);
    for (const k of keys) { write(out, k); write(out, v[k]); }
  }
}

/** Decodes one value (server frames: maps of strings and integers). */
export function decode(buf: Uint8Array): Value {
  const d = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 0;
  const n = (bytes: number): number => {
    let x = 0;
    for (let i = 0; i < bytes; i++) x = x * 256 + buf[p++];
    return x;
  };
  const str = (l: number): string => new TextDecoder().decode(buf.subarray(p, (p += l)));
  const arr = (l: number): Value[] => Array.from({ length: l }, read);
  const map = (l: number): Value => {
    const o: { [k: string]: Value } = {};
    for (let i = 0; i < l; i++) o[read() as string] = read();
    return o;
  };
  function read(): Value {
    const m = buf[p++];
    if (m < 0x80) return m;
    if (m < 0x90) return map(m & 15);
    if (m < 0xa0) return arr(m & 15);
    if (m < 0xc0) return str(m & 31);
    if (m >= 0xe0) return m - 256;
    // Unsigned ints, strings, arrays and maps come in runs of markers whose length field
    // doubles: 0xcc-0xcf (1, 2, 4, 8 bytes), 0xd9-0xdb (1, 2, 4), 0xdc-0xdd and 0xde-0xdf (2, 4).
    if (m >= 0xcc && m <= 0xcf) return n(1 << (m - 0xcc));
    if (m >= 0xd9 && m <= 0xdb) return str(n(1 << (m - 0xd9)));
    if (m == 0xdc || m == 0xdd) return arr(n(2 << (m - 0xdc)));
    if (m == 0xde || m == 0xdf) return map(n(2 << (m - 0xde)));
    switch (m) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xca: p += 4; return d.getFloat32(p - 4);
      case 0xcb: p += 8; return d.getFloat64(p - 8);
      case 0xd0: p += 1; return d.getInt8(p - 1);
      case 0xd1: p += 2; return d.getInt16(p - 2);
      case 0xd2: p += 4; return d.getInt32(p - 4);
      case 0xd3: p += 8; return Number(d.getBigInt64(p - 8));
    }
    throw m; // an unsupported marker (safe() catches it)
  }
  return read();
}
