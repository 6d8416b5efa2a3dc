// A real OpenID Connect provider on the loopback interface, for the browser tests.
//
//   node oidc_provider.mjs PORT --redirect-uri URI [--redirect-uri URI ...]
//        [--client-id ID] [--client-secret SECRET] [--auth-method METHOD] [--host HOST]
//
// PORT 0 picks a free port. The options can also come from the environment:
// OIDC_CLIENT_ID (default "onestory"), OIDC_REDIRECT_URIS (space separated),
// OIDC_CLIENT_SECRET, OIDC_AUTH_METHOD, OIDC_HOST. Without a secret the client is
// public (token_endpoint_auth_method "none"); with one it is confidential
// (client_secret_basic unless --auth-method says otherwise). PKCE with S256 is
// required of every client.
//
// HOST is 127.0.0.1 (the default) or localhost; either way the server listens on
// 127.0.0.1 only and the issuer is http://HOST:PORT. "localhost" puts the provider
// on another site than an app on 127.0.0.1, as an agency's real provider is, so
// that cookies are not shared and SameSite rules apply as in production.
//
// Sign-in happens on the provider's built-in development pages (devInteractions):
// the login name typed becomes the account's `sub` and `preferred_username`, with
// `email` LOGIN@example.test; any password is accepted. Then a consent screen asks
// to "Continue".
//
// Prints `READY <issuer>` on stdout once listening; stops on SIGTERM or SIGINT.

import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const USAGE = 'usage: node oidc_provider.mjs PORT --redirect-uri URI [--redirect-uri URI ...] '
  + '[--client-id ID] [--client-secret SECRET] [--auth-method METHOD] [--host 127.0.0.1|localhost]';

function options() {
  const env = process.env;
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'client-id': { type: 'string', default: env.OIDC_CLIENT_ID || 'onestory' },
      'redirect-uri': { type: 'string', multiple: true },
      'client-secret': { type: 'string', default: env.OIDC_CLIENT_SECRET || '' },
      'auth-method': { type: 'string', default: env.OIDC_AUTH_METHOD || '' },
      host: { type: 'string', default: env.OIDC_HOST || '127.0.0.1' },
    },
  });
  const redirectUris = values['redirect-uri']
    ?? (env.OIDC_REDIRECT_URIS || '').split(/\s+/).filter(Boolean);
  const [port] = positionals;
  if (positionals.length !== 1 || !/^\d+$/.test(port) || redirectUris.length === 0
      || !['127.0.0.1', 'localhost'].includes(values.host)) {
    console.error(USAGE);
    process.exit(2);
  }
  const secret = values['client-secret'];
  const client = {
    client_id: values['client-id'],
    redirect_uris: redirectUris,
    post_logout_redirect_uris: redirectUris.map((uri) => new URL('/', uri).href),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: values['auth-method'] || (secret ? 'client_secret_basic' : 'none'),
  };
  if (secret) client.client_secret = secret;
  return { port: Number(port), host: values.host, client };
}

function account(login) {
  return {
    accountId: login,
    async claims() {
      return { sub: login, preferred_username: login, email: `${login}@example.test` };
    },
  };
}

const { port, host, client } = options();
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = `http://${host}:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [client],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username'],
    email: ['email'],
  },
  scopes: ['openid', 'profile', 'email'],
  // The identity providers agencies use put the scope's claims into the ID token
  // as well; oidc-provider by default keeps them for the userinfo endpoint only.
  conformIdTokenClaims: false,
  findAccount: async (_ctx, sub) => account(sub),
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  pkce: { required: () => true },
  cookies: { keys: ['onestory-browser-tests-only'] },
  ttl: {
    AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600,
  },
});
provider.on('server_error', (_ctx, err) => console.error('server_error', err));
server.on('request', provider.callback());

console.log(`READY ${issuer}`);

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
