/**
 * JSON <-> google.protobuf.Struct in the object form @grpc/proto-loader uses, for the claims of
 * ValidateJWTSVIDResponse. Field names are those of protobufjs' built-in struct.proto (camelCase
 * even with keepCase, because protobufjs defines the well-known types itself).
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type ProtoValue =
  | { nullValue: 'NULL_VALUE'; kind?: 'nullValue' }
  | { numberValue: number; kind?: 'numberValue' }
  | { stringValue: string; kind?: 'stringValue' }
  | { boolValue: boolean; kind?: 'boolValue' }
  | { structValue: ProtoStruct; kind?: 'structValue' }
  | { listValue: { values: ProtoValue[] }; kind?: 'listValue' };

export interface ProtoStruct {
  fields: Record<string, ProtoValue>;
}

function toValue(value: unknown): ProtoValue | undefined {
  if (value === null) return { nullValue: 'NULL_VALUE' };
  switch (typeof value) {
    case 'number': return Number.isFinite(value) ? { numberValue: value } : { nullValue: 'NULL_VALUE' };
    case 'string': return { stringValue: value };
    case 'boolean': return { boolValue: value };
    case 'object':
      if (Array.isArray(value)) return { listValue: { values: value.map((v) => toValue(v) ?? { nullValue: 'NULL_VALUE' }) } };
      return { structValue: toStruct(value as Record<string, unknown>) };
    default: return undefined; // undefined, functions, symbols, bigint: absent in JSON too
  }
}

/**
 * A JSON object (e.g. JWT claims) as a google.protobuf.Struct.
 *
 * @example toStruct({ sub: 'spiffe://example.org/a', aud: ['x'] })
 *   // { fields: { sub: { stringValue: '...' }, aud: { listValue: { values: [{ stringValue: 'x' }] } } } }
 */
export function toStruct(object: Record<string, unknown>): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const [key, value] of Object.entries(object)) {
    const converted = toValue(value);
    if (converted !== undefined) fields[key] = converted;
  }
  return { fields };
}

function fromValue(value: Record<string, unknown>): Json {
  // With `oneofs: true` the loader names the set member in `kind`; without it, take the first present.
  const kind = (value.kind as string | undefined) ?? ['nullValue', 'numberValue', 'stringValue', 'boolValue', 'structValue', 'listValue'].find((k) => value[k] !== undefined && value[k] !== null);
  switch (kind) {
    case 'numberValue': return Number(value.numberValue);
    case 'stringValue': return String(value.stringValue);
    case 'boolValue': return Boolean(value.boolValue);
    case 'structValue': return fromStruct(value.structValue as ProtoStruct);
    case 'listValue': return ((value.listValue as { values?: Record<string, unknown>[] }).values ?? []).map(fromValue);
    default: return null;
  }
}

/**
 * A google.protobuf.Struct (as decoded by @grpc/proto-loader) back to a JSON object.
 *
 * @example const claims = fromStruct(response.claims); claims.sub // 'spiffe://example.org/a'
 */
export function fromStruct(struct: ProtoStruct | null | undefined): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [key, value] of Object.entries(struct?.fields ?? {})) out[key] = fromValue(value as unknown as Record<string, unknown>);
  return out;
}
