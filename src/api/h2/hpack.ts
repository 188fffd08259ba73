// HPACK (RFC 7541): header compression for HTTP/2. The decoder keeps a connection's dynamic table
// and honours dynamic table size updates; the encoder is used to re-emit repaired header blocks as
// literals (no dynamic table, no Huffman), and, with its options, by tests to produce blocks the
// way real clients do (Huffman strings, incremental indexing).
//
// Header names and values are kept as latin1 strings: one char per octet, so any byte sequence
// survives a decode/encode round trip unchanged.

export class HpackError extends Error {
  override readonly name = 'HpackError';
}

export interface HeaderField {
  name: string;
  value: string;
  /** Sent as "literal never indexed": intermediaries must keep it that way. */
  sensitive?: boolean;
}

/** RFC 7541 Appendix A. Index 1 is STATIC_TABLE[0]. */
export const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/** First static index of each name (what a literal with an indexed name refers to). */
const STATIC_NAME_INDEX = new Map<string, number>();
/** Static index of each exact name+value pair. */
const STATIC_PAIR_INDEX = new Map<string, number>();
STATIC_TABLE.forEach(([name, value], i) => {
  if (!STATIC_NAME_INDEX.has(name)) STATIC_NAME_INDEX.set(name, i + 1);
  STATIC_PAIR_INDEX.set(`${name}\0${value}`, i + 1);
});

// --- Huffman (RFC 7541 Appendix B) ---
// The code is canonical: codes of one length are consecutive, in symbol order, and each length
// continues where the shorter ones stopped. So the 257 code lengths (256 octets and EOS) determine
// every code, and decoding needs, per length, the first code and where its symbols start.
// biome-ignore format: a table
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];
const EOS = 256;
const MAX_CODE_LEN = 30;

/** Code of each symbol (0..256). */
export const HUFFMAN_CODES: readonly number[] = (() => {
  const syms = HUFFMAN_LENGTHS.map((_, s) => s).sort(
    (a, b) => HUFFMAN_LENGTHS[a] - HUFFMAN_LENGTHS[b] || a - b,
  );
  const codes = new Array<number>(HUFFMAN_LENGTHS.length);
  let code = 0;
  let len = HUFFMAN_LENGTHS[syms[0]];
  for (const s of syms) {
    code <<= HUFFMAN_LENGTHS[s] - len;
    len = HUFFMAN_LENGTHS[s];
    codes[s] = code++;
  }
  return codes;
})();

// Per length L: FIRST_CODE[L] is the smallest code of length L, COUNT[L] how many there are and
// OFFSET[L] where they start in SORTED_SYMBOLS.
const FIRST_CODE = new Array<number>(MAX_CODE_LEN + 1).fill(0);
const COUNT = new Array<number>(MAX_CODE_LEN + 1).fill(0);
const OFFSET = new Array<number>(MAX_CODE_LEN + 1).fill(0);
const SORTED_SYMBOLS: number[] = HUFFMAN_LENGTHS.map((_, s) => s).sort(
  (a, b) => HUFFMAN_LENGTHS[a] - HUFFMAN_LENGTHS[b] || a - b,
);
SORTED_SYMBOLS.forEach((s, i) => {
  const len = HUFFMAN_LENGTHS[s];
  if (COUNT[len] === 0) {
    FIRST_CODE[len] = HUFFMAN_CODES[s];
    OFFSET[len] = i;
  }
  COUNT[len]++;
});
const MIN_CODE_LEN = HUFFMAN_LENGTHS[SORTED_SYMBOLS[0]];

export function huffmanDecode(src: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(Math.ceil((src.length * 8) / MIN_CODE_LEN));
  let n = 0;
  let code = 0;
  let len = 0;
  for (const byte of src) {
    for (let bit = 7; bit >= 0; bit--) {
      code = (code << 1) | ((byte >> bit) & 1);
      len++;
      if (len < MIN_CODE_LEN) continue;
      const idx = code - FIRST_CODE[len];
      if (idx >= 0 && idx < COUNT[len]) {
        const sym = SORTED_SYMBOLS[OFFSET[len] + idx];
        if (sym === EOS) throw new HpackError('huffman: EOS in string');
        out[n++] = sym;
        code = 0;
        len = 0;
      } else if (len >= MAX_CODE_LEN) {
        throw new HpackError('huffman: invalid code');
      }
    }
  }
  // What is left must be padding: at most 7 bits, all ones (the most significant bits of EOS).
  if (len > 7 || code !== (1 << len) - 1) throw new HpackError('huffman: invalid padding');
  return out.subarray(0, n);
}

export function huffmanEncode(src: Uint8Array): Buffer {
  let bits = 0;
  for (const b of src) bits += HUFFMAN_LENGTHS[b];
  const out = Buffer.alloc(Math.ceil(bits / 8));
  let n = 0;
  let acc = 0; // pending bits, at most 7 + 30 of them: kept below 2^53 with plain arithmetic
  let accLen = 0;
  for (const b of src) {
    acc = acc * 2 ** HUFFMAN_LENGTHS[b] + HUFFMAN_CODES[b];
    accLen += HUFFMAN_LENGTHS[b];
    while (accLen >= 8) {
      accLen -= 8;
      const div = 2 ** accLen;
      out[n++] = Math.floor(acc / div) & 0xff;
      acc %= div;
    }
  }
  if (accLen > 0) out[n++] = ((acc << (8 - accLen)) | (0xff >> accLen)) & 0xff;
  return out;
}

export function huffmanEncodedLength(src: Uint8Array): number {
  let bits = 0;
  for (const b of src) bits += HUFFMAN_LENGTHS[b];
  return Math.ceil(bits / 8);
}

// --- primitives (RFC 7541 section 5) ---

/** Largest integer accepted in a block (table sizes, indexes, string lengths). */
const MAX_INT = 2 ** 28;

class Reader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  peek(): number {
    return this.buf[this.pos];
  }

  integer(prefixBits: number): number {
    if (this.done) throw new HpackError('truncated integer');
    const max = (1 << prefixBits) - 1;
    let value = this.buf[this.pos++] & max;
    if (value < max) return value;
    let shift = 0;
    for (;;) {
      if (this.done) throw new HpackError('truncated integer');
      const b = this.buf[this.pos++];
      value += (b & 0x7f) * 2 ** shift;
      if (value > MAX_INT) throw new HpackError('integer too large');
      if ((b & 0x80) === 0) return value;
      shift += 7;
    }
  }

  string(): string {
    if (this.done) throw new HpackError('truncated string');
    const huffman = (this.peek() & 0x80) !== 0;
    const len = this.integer(7);
    if (this.pos + len > this.buf.length) throw new HpackError('truncated string');
    const raw = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return (huffman ? huffmanDecode(raw) : Buffer.from(raw.buffer, raw.byteOffset, raw.length)).toString(
      'latin1',
    );
  }
}

class Writer {
  private chunks: Buffer[] = [];
  private cur = Buffer.allocUnsafe(256);
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.chunks.push(this.cur.subarray(0, this.pos));
    this.cur = Buffer.allocUnsafe(Math.max(256, n));
    this.pos = 0;
  }

  integer(value: number, prefixBits: number, firstByteFlags: number): void {
    this.ensure(6);
    const max = (1 << prefixBits) - 1;
    if (value < max) {
      this.cur[this.pos++] = firstByteFlags | value;
      return;
    }
    this.cur[this.pos++] = firstByteFlags | max;
    value -= max;
    while (value >= 0x80) {
      this.cur[this.pos++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.cur[this.pos++] = value;
  }

  string(s: string, huffman: boolean): void {
    const raw = Buffer.from(s, 'latin1');
    if (huffman && huffmanEncodedLength(raw) < raw.length) {
      const enc = huffmanEncode(raw);
      this.integer(enc.length, 7, 0x80);
      this.bytes(enc);
    } else {
      this.integer(raw.length, 7, 0);
      this.bytes(raw);
    }
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.cur.set(b, this.pos);
    this.pos += b.length;
  }

  finish(): Buffer {
    this.chunks.push(this.cur.subarray(0, this.pos));
    return this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
  }
}

// --- dynamic table (RFC 7541 section 4) ---

const ENTRY_OVERHEAD = 32;

class DynamicTable {
  /** Newest first. */
  private entries: Array<readonly [string, string]> = [];
  private size = 0;

  constructor(private maxSize: number) {}

  get length(): number {
    return this.entries.length;
  }

  get(i: number): readonly [string, string] | undefined {
    return this.entries[i];
  }

  get capacity(): number {
    return this.maxSize;
  }

  add(name: string, value: string): void {
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    if (entrySize > this.maxSize) {
      // an entry larger than the table empties it and is not added (section 4.4)
      this.entries = [];
      this.size = 0;
      return;
    }
    this.entries.unshift([name, value]);
    this.size += entrySize;
    this.evict();
  }

  resize(maxSize: number): void {
    this.maxSize = maxSize;
    this.evict();
  }

  find(name: string, value: string): { index: number; exact: boolean } | undefined {
    let nameOnly: number | undefined;
    for (let i = 0; i < this.entries.length; i++) {
      const [n, v] = this.entries[i];
      if (n !== name) continue;
      if (v === value) return { index: i, exact: true };
      nameOnly ??= i;
    }
    return nameOnly === undefined ? undefined : { index: nameOnly, exact: false };
  }

  private evict(): void {
    while (this.size > this.maxSize) {
      const [n, v] = this.entries.pop()!;
      this.size -= n.length + v.length + ENTRY_OVERHEAD;
    }
  }
}

export const DEFAULT_HEADER_TABLE_SIZE = 4096;

/** Decodes the header blocks of one direction of one connection, in order. */
export class HpackDecoder {
  private readonly table: DynamicTable;

  /**
   * @param maxTableSize the SETTINGS_HEADER_TABLE_SIZE the decoding side advertised: the encoder may
   * size its table anywhere up to it with dynamic table size updates.
   */
  constructor(private readonly maxTableSize = DEFAULT_HEADER_TABLE_SIZE) {
    this.table = new DynamicTable(maxTableSize);
  }

  /** Current size limit of the dynamic table (after the encoder's size updates). */
  get tableSize(): number {
    return this.table.capacity;
  }

  decode(block: Uint8Array): HeaderField[] {
    const r = new Reader(block);
    const out: HeaderField[] = [];
    let fieldSeen = false;
    while (!r.done) {
      const b = r.peek();
      if (b & 0x80) {
        // indexed field
        const [name, value] = this.lookup(r.integer(7));
        out.push({ name, value });
        fieldSeen = true;
      } else if (b & 0x40) {
        // literal with incremental indexing
        const nameIndex = r.integer(6);
        const name = nameIndex === 0 ? r.string() : this.lookup(nameIndex)[0];
        const value = r.string();
        this.table.add(name, value);
        out.push({ name, value });
        fieldSeen = true;
      } else if (b & 0x20) {
        // dynamic table size update: only at the start of a block (section 4.2)
        if (fieldSeen) throw new HpackError('dynamic table size update after a header field');
        const size = r.integer(5);
        if (size > this.maxTableSize) throw new HpackError(`dynamic table size ${size} above the limit`);
        this.table.resize(size);
      } else {
        // literal without indexing (0000) or never indexed (0001)
        const sensitive = (b & 0x10) !== 0;
        const nameIndex = r.integer(4);
        const name = nameIndex === 0 ? r.string() : this.lookup(nameIndex)[0];
        const value = r.string();
        out.push(sensitive ? { name, value, sensitive } : { name, value });
        fieldSeen = true;
      }
    }
    return out;
  }

  private lookup(index: number): readonly [string, string] {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1];
    const entry = this.table.get(index - STATIC_TABLE.length - 1);
    if (!entry) throw new HpackError(`index ${index} beyond the tables`);
    return entry;
  }
}

export interface HpackEncoderOptions {
  /** Huffman-code strings when that is shorter (default false). */
  huffman?: boolean;
  /** Add fields to the dynamic table and refer to earlier ones (default false: literals only). */
  indexing?: boolean;
  /** Dynamic table size to announce at the start of the next block (with indexing). */
  tableSize?: number;
}

/**
 * Encodes header blocks. With the default options it emits every field as a literal without
 * indexing (never-indexed ones stay never-indexed), so it keeps no state and leaves the peer's
 * dynamic table empty.
 */
export class HpackEncoder {
  private readonly huffman: boolean;
  private readonly indexing: boolean;
  private readonly table: DynamicTable;
  private pendingSizeUpdate: number | undefined;

  constructor(opts: HpackEncoderOptions = {}) {
    this.huffman = opts.huffman ?? false;
    this.indexing = opts.indexing ?? false;
    this.table = new DynamicTable(opts.tableSize ?? DEFAULT_HEADER_TABLE_SIZE);
    if (opts.tableSize !== undefined) this.pendingSizeUpdate = opts.tableSize;
  }

  /** Resizes the dynamic table; the update is announced at the start of the next block. */
  setTableSize(size: number): void {
    this.table.resize(size);
    this.pendingSizeUpdate = size;
  }

  encode(fields: readonly HeaderField[]): Buffer {
    const w = new Writer();
    if (this.pendingSizeUpdate !== undefined) {
      w.integer(this.pendingSizeUpdate, 5, 0x20);
      this.pendingSizeUpdate = undefined;
    }
    for (const f of fields) {
      if (this.indexing && !f.sensitive) {
        const exact = STATIC_PAIR_INDEX.get(`${f.name}\0${f.value}`);
        if (exact !== undefined) {
          w.integer(exact, 7, 0x80);
          continue;
        }
        const dyn = this.table.find(f.name, f.value);
        if (dyn?.exact) {
          w.integer(STATIC_TABLE.length + 1 + dyn.index, 7, 0x80);
          continue;
        }
        const nameIndex =
          STATIC_NAME_INDEX.get(f.name) ?? (dyn ? STATIC_TABLE.length + 1 + dyn.index : undefined);
        if (nameIndex !== undefined) {
          w.integer(nameIndex, 6, 0x40);
        } else {
          w.integer(0, 6, 0x40);
          w.string(f.name, this.huffman);
        }
        w.string(f.value, this.huffman);
        this.table.add(f.name, f.value);
        continue;
      }
      const flags = f.sensitive ? 0x10 : 0;
      const nameIndex = STATIC_NAME_INDEX.get(f.name);
      if (nameIndex !== undefined) {
        w.integer(nameIndex, 4, flags);
      } else {
        w.integer(0, 4, flags);
        w.string(f.name, this.huffman);
      }
      w.string(f.value, this.huffman);
    }
    return w.finish();
  }
}
