// Package tlsserve terminates TLS in the data plane: the platform's wildcard
// certificate for the base domain's hosts and, for tenants' custom domains,
// certificates obtained on demand over ACME (certmagic), only for the hosts
// customdomains.Policy.AllowCertificate accepts. Certificates, the ACME
// account and the issuance locks live in Redis (RedisStorage), so every
// replica behind the TCP load balancer shares them.
package tlsserve
