/**
 * Strict decoding of a JWT-SVID's compact serialization, before any key is looked at. Everything the
 * verifier later trusts is checked here for shape: three canonical base64url parts, a header with only
 * `alg`, `kid` and `typ`, and a JSON object payload.
 */
import type { JWSHeaderParameters, JWTPayload } from 'jose';
import { MandateError } from '../../errors.ts';
import { decodeBase64UrlStrict } from '../bundle/encoding.ts';
import { isJwtSvidAlg, type JwtSvidAlg } from './algorithms.ts';

export interface DecodedJwtSvid {
  header: JWSHeaderParameters & { alg: JwtSvidAlg };
  payload: JWTPayload;
  /** `header.payload` exactly as received: the bytes the signature covers. */
  signingInput: string;
  signature: Buffer;
}

/** JWT-SVID §2: any other header, registered or private, MUST NOT be present. */
const ALLOWED_HEADERS = new Set(['alg', 'kid', 'typ']);
/** JWT-SVID §2.3; RFC 8725 §3.11: other types (at+jwt, dpop+jwt, ...) are other kinds of token. */
const ALLOWED_TYPS = new Set(['JWT', 'JOSE']);

const utf8 = new TextDecoder('utf-8', { fatal: true });

function invalid(message: string): MandateError {
  return new MandateError('ERR_JWT_SVID_INVALID', message);
}

function jsonObjectPart(part: string, name: string): Record<string, unknown> {
  const bytes = decodeBase64UrlStrict(part);
  if (bytes === undefined || bytes.length === 0) throw invalid(`${name} is not base64url`);
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    throw invalid(`${name} is not UTF-8 JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`${name} is not a JSON object`);
  return value as Record<string, unknown>;
}

function checkHeader(header: Record<string, unknown>): DecodedJwtSvid['header'] {
  for (const name of Object.keys(header)) {
    if (!ALLOWED_HEADERS.has(name)) throw invalid(`header "${name}" is not allowed in a JWT-SVID (only alg, kid, typ)`);
  }
  const { alg, kid, typ } = header;
  if (!isJwtSvidAlg(alg)) throw invalid(`alg ${JSON.stringify(alg)} is not allowed (JWT-SVID §2.1: RS*, ES*, PS* only)`);
  if (kid !== undefined && (typeof kid !== 'string' || kid === '')) throw invalid('kid header is not a non-empty string');
  if (typ !== undefined && !ALLOWED_TYPS.has(typ as string)) throw invalid(`typ ${JSON.stringify(typ)} is not JWT or JOSE (JWT-SVID §2.3)`);
  return header as DecodedJwtSvid['header'];
}

function splitCompact(token: string, maxLength: number): [string, string, string] {
  if (typeof token !== 'string') throw invalid('token is not a string');
  if (token.length > maxLength) throw invalid(`token is ${token.length} characters, over the limit of ${maxLength}`);
  if (token.trimStart().startsWith('{')) throw invalid('JWS JSON serialization is not allowed (JWT-SVID §5.1: compact only)');
  const parts = token.split('.');
  if (parts.length === 5) throw invalid('token has 5 parts: a JWE is not a JWT-SVID');
  if (parts.length !== 3) throw invalid(`token has ${parts.length} parts, compact serialization needs 3`);
  return parts as [string, string, string];
}

/**
 * Splits and decodes a compact JWT-SVID without verifying it.
 *
 * @throws MandateError ERR_JWT_SVID_INVALID naming the failed check.
 * @example const { header, payload } = decodeJwtSvid(token, 16384);
 */
export function decodeJwtSvid(token: string, maxLength: number): DecodedJwtSvid {
  const [h, p, s] = splitCompact(token, maxLength);
  const header = checkHeader(jsonObjectPart(h, 'header'));
  const payload = jsonObjectPart(p, 'payload') as JWTPayload;
  const signature = decodeBase64UrlStrict(s);
  if (signature === undefined || signature.length === 0) throw invalid('signature is not base64url');
  return { header, payload, signingInput: `${h}.${p}`, signature };
}
