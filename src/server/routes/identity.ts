/** Public identity endpoints: bundle (federation endpoint, https_web), attestation, SVID renewal and JWT-SVIDs. */
import type { IdentityAuthority } from '../../identity/authority/authority.ts';
import { ReplayCache, verifySvidPop } from '../../identity/authority/svid-pop.ts';
import { sendJson } from '../http/context.ts';
import type { Router } from '../http/router.ts';

export function identityRoutes(router: Router, authority: IdentityAuthority): void {
  const replay = new ReplayCache();

  const caller = async (ctx: Parameters<Parameters<Router['on']>[2]>[0]) =>
    verifySvidPop({
      authorization: ctx.req.headers.authorization,
      method: ctx.method,
      path: ctx.path,
      body: await ctx.body(),
      bundles: authority.bundles(),
      trustDomain: authority.trustDomain,
      replay,
    });

  router
    .on('GET', '/bundle', (ctx) => sendJson(ctx.res, 200, authority.ownBundleJson()))
    .on('GET', '/v1/bundles', (ctx) =>
      sendJson(ctx.res, 200, { trust_domain: authority.trustDomain, bundles: { [authority.trustDomain]: authority.ownBundleJson(), ...authority.federatedBundlesJson() } }))
    .on('POST', '/v1/attest', async (ctx) => {
      sendJson(ctx.res, 200, await authority.attestAndIssue(await ctx.json(), { sourceAddress: ctx.sourceAddress }));
    })
    .on('POST', '/v1/svid/x509', async (ctx) => {
      const { spiffeId } = await caller(ctx);
      sendJson(ctx.res, 200, await authority.renewX509(spiffeId, await ctx.json(), { sourceAddress: ctx.sourceAddress }));
    })
    .on('POST', '/v1/svid/jwt', async (ctx) => {
      const { spiffeId } = await caller(ctx);
      sendJson(ctx.res, 200, await authority.mintJwtSvid(spiffeId, await ctx.json(), { sourceAddress: ctx.sourceAddress }));
    });
}
