/**
 * A principal: the person an agent acts for, as the delegation authority knows them after sign-in
 * (built-in directory or an external OpenID Connect provider) or after verifying a subject token.
 * Identity is `issuer` + `subject`; everything else is for display and policy input.
 */
export interface Principal {
  /** The identity provider: this deployment's issuer for directory users, the provider's `iss` otherwise. */
  issuer: string;
  /** Stable id at that issuer: the directory user's id, or the provider's `sub`. */
  subject: string;
  /** Display name (never used to authorize). */
  name: string;
  email?: string;
  /** Group or role names from the provider (`groups`, else `roles`); empty for directory users. */
  groups: string[];
  /** How the principal was established: directory password, OIDC sign-in, or a presented token. */
  authMethod: 'password' | 'oidc' | 'token';
}
