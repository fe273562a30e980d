// Job body codecs. Disque treats bodies as opaque bytes; a codec turns
// application values into those bytes and back. Replies are read as Buffers,
// so every codec sees the exact bytes the producer sent.
import { pack, unpack } from 'msgpackr';
import { CodecError } from './errors.js';

/** Turns values of type `T` into job bodies and back. */
export interface Codec<T> {
  /** Short name, used in error messages. */
  readonly name: string;
  /** The body to send. */
  encode(value: BodyInput<T>): Buffer | string;
  /** The value of a body received from the server. */
  decode(body: Buffer): T;
}

/**
 * What a codec accepts when encoding: the decoded type itself, except that
 * the default Buffer codec also accepts strings (sent as UTF-8).
 */
export type BodyInput<T> = [T] extends [Buffer] ? Buffer | string : T;

/** Bodies as raw Buffers; strings are sent as UTF-8. The default codec. */
export const bufferCodec: Codec<Buffer> = {
  name: 'buffer',
  encode: (value) => value,
  decode: (body) => body,
};

/** Bodies as UTF-8 strings (Buffers are sent as given). */
export const stringCodec: Codec<string> = {
  name: 'string',
  encode: (value) => value,
  decode: (body) => body.toString('utf8'),
};

function guard<T>(name: string, what: 'encode' | 'decode', f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new CodecError(`${name} codec could not ${what} the job body: ${(e as Error).message}`, { cause: e });
  }
}

/** Bodies as JSON text. `T` is the value's type (not checked at run time). */
export function jsonCodec<T = unknown>(): Codec<T> {
  return {
    name: 'json',
    encode: (value) =>
      guard('json', 'encode', () => {
        const text = JSON.stringify(value);
        // JSON.stringify(undefined) is undefined: there is no body to send.
        if (text === undefined) throw new Error('value has no JSON form');
        return text;
      }),
    decode: (body) => guard('json', 'decode', () => JSON.parse(body.toString('utf8')) as T),
  };
}

/** Bodies as MessagePack (msgpackr): compact, binary, keeps Buffers and Dates. */
export function msgpackCodec<T = unknown>(): Codec<T> {
  return {
    name: 'msgpack',
    encode: (value) => guard('msgpack', 'encode', () => pack(value)),
    decode: (body) => guard('msgpack', 'decode', () => unpack(body) as T),
  };
}

/** The built-in codecs. */
export const codecs = {
  buffer: bufferCodec,
  string: stringCodec,
  json: jsonCodec,
  msgpack: msgpackCodec,
} as const;
