/**
 * gRPC statuses of the Workload Endpoint (Workload Endpoint §6, Appendix A). The code tells a client
 * whether to retry: InvalidArgument and Unimplemented never, Unavailable and PermissionDenied with
 * backoff.
 */
import { status as Status, type ServiceError } from '@grpc/grpc-js';
import { isMandateError } from '../../errors.ts';

/** The object grpc-js turns into a status: `callback(err)` or `call.emit('error', err)`. */
export type GrpcError = Pick<ServiceError, 'code' | 'details'> & { message: string };

export function grpcError(code: Status, details: string): GrpcError {
  return { code, details, message: details };
}

/** The security header every request must carry (Workload Endpoint §3). */
export const SECURITY_HEADER = 'workload.spiffe.io';

export const MISSING_HEADER_MESSAGE = `security header missing from request: every call must carry the gRPC metadata "${SECURITY_HEADER}: true" (SPIFFE Workload Endpoint §3)`;

export const NO_IDENTITY_MESSAGE = 'no X.509-SVID is available: the agent has not attested yet, or its SVID expired and could not be renewed';

/**
 * Status for a failure of the source behind the endpoint (e.g. the Mandate server refusing or
 * unreachable while fetching a JWT-SVID). MandateError messages carry no secrets, so they pass through.
 *
 * @example callback(statusForSourceError(err));
 */
export function statusForSourceError(err: unknown): GrpcError {
  if (!isMandateError(err)) return grpcError(Status.INTERNAL, 'internal error');
  const httpStatus = err.status;
  if (httpStatus === 400) return grpcError(Status.INVALID_ARGUMENT, `${err.code}: ${err.message}`);
  if (httpStatus === 401 || httpStatus === 403) return grpcError(Status.PERMISSION_DENIED, `${err.code}: ${err.message}`);
  if (httpStatus === 408 || httpStatus === 502 || httpStatus === 503 || httpStatus === 504) return grpcError(Status.UNAVAILABLE, `${err.code}: ${err.message}`);
  return grpcError(Status.INTERNAL, `${err.code}: ${err.message}`);
}
