/**
 * The SPIFFE Workload API service definition, loaded at run time from proto/workloadapi.proto (the
 * spec's own file, unmodified) so the wire format is exactly the one SPIFFE clients speak.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Path of the proto file in the repository (proto/workloadapi.proto). */
export const WORKLOAD_API_PROTO = fileURLToPath(new URL('../../../proto/workloadapi.proto', import.meta.url));

/** Options every loader of this proto must use, so field names and values look the same everywhere. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

/** The proto has no `package`, so the service's full name is just this, as in SPIRE. */
export const WORKLOAD_API_SERVICE = 'SpiffeWorkloadAPI';

let cached: grpc.ServiceDefinition | undefined;

/**
 * The SpiffeWorkloadAPI service definition, for `server.addService` or `makeGenericClientConstructor`.
 *
 * @example server.addService(workloadApiService(), handlers);
 */
export function workloadApiService(): grpc.ServiceDefinition {
  if (!cached) {
    const definition = protoLoader.loadSync(WORKLOAD_API_PROTO, PROTO_LOADER_OPTIONS);
    const pkg = grpc.loadPackageDefinition(definition);
    const ctor = pkg[WORKLOAD_API_SERVICE] as grpc.ServiceClientConstructor;
    cached = ctor.service;
  }
  return cached;
}

/**
 * A client constructor for the Workload API (used by tests and by Node workloads of our own).
 *
 * @example
 *   const Client = workloadApiClientConstructor();
 *   const client = new Client(`unix:${socketPath}`, grpc.credentials.createInsecure());
 */
export function workloadApiClientConstructor(): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(workloadApiService(), WORKLOAD_API_SERVICE);
}
