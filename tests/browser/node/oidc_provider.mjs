// A real OpenID Connect provider on the loopback interface, for the browser tests.
//
//   node oidc_provider.mjs PORT --redirect-uri URI [--redirect-uri URI ...]
//        [--client-id ID] [--client-secret SECRET] [--auth-method METHOD] [--host HOST]
//        [--misbehave iss|aud|nonce|expired|signature]
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
// --misbehave makes the provider hand out a wrong ID token from its token
// endpoint, for testing that the client refuses it: issued by another issuer
// (iss), for another client though naming this one its authorized party
// (aud), without the nonce the client sent (nonce),
// expired an hour ago (expired), or signed with a key that is not in the
// provider's published JWKS though it carries that key's id (signature). The
// token is otherwise the provider's own, signed with its own key. Without the
// option the provider behaves.
//
// Prints `READY <issuer>` on stdout once listening; stops on SIGTERM or SIGINT.

import { createServer } from 'node:http';
import { generateKeyPairSync, sign } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const USAGE = 'usage: node oidc_provider.mjs PORT --redirect-uri URI [--redirect-uri URI ...] '
  + '[--client-id ID] [--client-secret SECRET] [--auth-method METHOD] [--host 127.0.0.1|localhost] '
  + '[--misbehave iss|aud|nonce|expired|signature]';
const MISBEHAVIOURS = ['iss', 'aud', 'nonce', 'expired', 'signature'];

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
      misbehave: { type: 'string', default: '' },
    },
  });
  const redirectUris = values['redirect-uri']
    ?? (env.OIDC_REDIRECT_URIS || '').split(/\s+/).filter(Boolean);
  const [port] = positionals;
  if (positionals.length !== 1 || !/^\d+$/.test(port) || redirectUris.length === 0
      || !['127.0.0.1', 'localhost'].includes(values.host)
      || (values.misbehave && !MISBEHAVIOURS.includes(values.misbehave))) {
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
  return { port: Number(port), host: values.host, client, misbehave: values.misbehave };
}

// --- a wrong ID token, on purpose ---------------------------------------------------

function signingKey(kid) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, jwk: { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
}

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const unb64 = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

function resign(header, claims, privateKey) {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
}

function spoil(idToken, how, own, stranger) {
  const [headerPart, claimsPart] = idToken.split('.');
  const header = unb64(headerPart);
  const claims = unb64(claimsPart);
  const now = Math.floor(Date.now() / 1000);
  let key = own.privateKey;
  if (how === 'iss') claims.iss = `${claims.iss}/another-issuer`;
  if (how === 'aud') {
    // Meant for another client, naming this one as the party it was issued
    // to: a client that only compares `azp` would take it.
    claims.azp = Array.isArray(claims.aud) ? claims.aud[0] : claims.aud;
    claims.aud = 'another-client';
  }
  if (how === 'nonce') delete claims.nonce;
  if (how === 'expired') Object.assign(claims, { iat: now - 7200, exp: now - 3600 });
  if (how === 'signature') key = stranger.privateKey;
  return resign(header, claims, key);
}

function account(login) {
  return {
    accountId: login,
    async claims() {
      return { sub: login, preferred_username: login, email: `${login}@example.test` };
    },
  };
}

const { port, host, client, misbehave } = options();
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = `http://${host}:${server.address().port}`;

// A misbehaving provider signs with a key of its own making (published in its
// JWKS), so that it can sign the spoilt token again; `stranger` shares its key
// id and is published nowhere.
const own = misbehave ? signingKey('onestory-test') : null;
const stranger = misbehave ? signingKey('onestory-test') : null;

const provider = new Provider(issuer, {
  ...(own ? { jwks: { keys: [own.jwk] } } : {}),
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
if (misbehave) {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'token' && ctx.body?.id_token) {
      ctx.body = { ...ctx.body, id_token: spoil(ctx.body.id_token, misbehave, own, stranger) };
      console.log(`MISBEHAVED ${misbehave}`);
    }
  });
}
server.on('request', provider.callback());

console.log(`READY ${issuer}`);

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
