"""The local token issuer: the local stack's stand-in for the Cognito user pool.

It holds RS256 signing keys under `<state dir>/issuer/keys/`, signs Cognito-shaped access tokens
for customers and for services (`order-saga token`), and serves the public halves as a JWKS at
`<issuer URL>/.well-known/jwks.json`, where the edge fetches them, as it fetches Cognito's in AWS.
"""
