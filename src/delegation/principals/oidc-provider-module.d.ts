/**
 * Types for the parts of `oidc-provider` (a dev dependency without its own declarations) that the
 * test identity provider in oidc-provider.fixture.ts uses.
 */
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** The provider's configuration object; see the oidc-provider documentation for its members. */
  export type Configuration = Record<string, unknown>;

  export default class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    /** The request listener to mount on an http(s) server. */
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }
}
