// A real OpenID provider (the npm package oidc-provider, OpenID Certified) for the
// sign-in tests in tests/auth. Started by tests/auth/provider.py on 127.0.0.1:
//   PORT=<port> CLIENTS='[{"client_id": ..., "client_secret": ..., "redirect_uris": [...],
//                         "post_logout_redirect_uris": [...]}]' node provider.mjs
// Its development interactions render a real login form (any login and password; the
// login is the account id and the email) and a consent form; the tests submit both.
// It prints "ready <issuer>" once it listens.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.CLIENTS || '[]');

const provider = new Provider(issuer, {
  clients,
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      email: id,
      email_verified: !id.startsWith('unverified'),
      name: id.split('@')[0],
    }),
  }),
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  cookies: { keys: ['erp-test-provider-cookie-key'] },
  ttl: { AuthorizationCode: 60, IdToken: 300, AccessToken: 300, Session: 3600, Grant: 3600, Interaction: 300 },
});

// Quiet: tests read only the "ready" line.
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
