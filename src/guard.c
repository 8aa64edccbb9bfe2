/*
 * guard.c: what an HTTP request to the sidecar must pass before its body
 * is read: the Host it names, the Origin a browser sends, the bearer
 * token, the type of its body.
 *
 * Pure functions over header values (no libmicrohttpd, no I/O), so each
 * can be fuzzed and unit-tested on its own; http.c maps their
 * verdicts to status codes.
 */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <uriparser/Uri.h>

#include "daemon.h"

const char *const sv_host_defaults[] = {
	"localhost", "supervise", NULL,
};

static int
is_ip_literal(const char *s, size_t n)
{
	char buf[64];
	unsigned char addr[16];

	if (n == 0 || n >= sizeof buf)
		return 0;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return inet_pton(AF_INET, buf, addr) == 1 ||
	    inet_pton(AF_INET6, buf, addr) == 1;
}

/*
 * A Host header is HOST or HOST:PORT, HOST a DNS name, an IPv4 address
 * or an IPv6 address in brackets.  An address is always let in: DNS
 * rebinding needs a name (the attacker's, resolving to us), and a
 * browser that speaks to an address sends that address.  A name must be
 * one of `names` (case does not matter, nor a trailing dot).
 */
enum sv_host_verdict
sv_host_check(const char *host, const char *const *names, size_t nnames)
{
	const char *end, *colon, *p;
	size_t n;

	if (host == NULL)
		return SV_HOST_OK;	/* HTTP/1.0: no browser sends none */
	n = strlen(host);
	if (n == 0 || n > 255)
		return SV_HOST_BAD;
	if (host[0] == '[') {
		end = strchr(host, ']');
		if (end == NULL || !is_ip_literal(host + 1,
		    (size_t)(end - host - 1)) || strchr(host + 1, '[') != NULL)
			return SV_HOST_BAD;
		colon = end[1] == ':' ? end + 1 : NULL;
		if (end[1] != '\0' && colon == NULL)
			return SV_HOST_BAD;
	} else {
		colon = strchr(host, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL)
			return SV_HOST_BAD;	/* IPv6 without brackets */
		end = colon ? colon : host + n;
	}
	if (colon != NULL) {
		if (colon[1] == '\0' || strlen(colon + 1) > 5)
			return SV_HOST_BAD;
		for (p = colon + 1; *p != '\0'; p++)
			if (*p < '0' || *p > '9')
				return SV_HOST_BAD;
	}
	if (host[0] == '[')
		return SV_HOST_OK;
	n = (size_t)(end - host);
	for (p = host; p < end; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_'))
			return SV_HOST_BAD;
	if (n == 0)
		return SV_HOST_BAD;
	if (is_ip_literal(host, n))
		return SV_HOST_OK;
	if (host[n - 1] == '.')
		n--;
	for (size_t i = 0; i < nnames; i++)
		if (strlen(names[i]) == n && strncasecmp(names[i], host, n) == 0)
			return SV_HOST_OK;
	return SV_HOST_UNKNOWN;
}

/*
 * Browsers send Origin; a page on another site must not drive the
 * sidecar (DNS rebinding).  Only pages served from this machine's
 * loopback names are let in: http(s)://localhost, 127.0.0.1, [::1], any
 * port.  Clients that are not browsers send no Origin at all.
 */
int
sv_origin_allowed(const char *origin)
{
	UriUriA uri;
	const char *errpos;
	size_t hl, sl;
	int ok = 0;

	memset(&uri, 0, sizeof uri);
	if (uriParseSingleUriA(&uri, origin, &errpos) != URI_SUCCESS)
		return 0;
	sl = uri.scheme.first ? (size_t)(uri.scheme.afterLast -
	    uri.scheme.first) : 0;
	hl = uri.hostText.first ? (size_t)(uri.hostText.afterLast -
	    uri.hostText.first) : 0;
	if (((sl == 4 && strncasecmp(uri.scheme.first, "http", 4) == 0) ||
	    (sl == 5 && strncasecmp(uri.scheme.first, "https", 5) == 0)) &&
	    uri.userInfo.first == NULL && uri.pathHead == NULL &&
	    uri.query.first == NULL && uri.fragment.first == NULL &&
	    ((hl == 9 && strncasecmp(uri.hostText.first, "localhost", 9) == 0) ||
	    (hl == 9 && strncmp(uri.hostText.first, "127.0.0.1", 9) == 0) ||
	    (hl == 3 && strncmp(uri.hostText.first, "::1", 3) == 0)))
		ok = 1;
	uriFreeUriMembersA(&uri);
	return ok;
}

void
sv_token_digest(const char *token, unsigned char out[SV_TOKEN_DIGEST])
{
	unsigned int n = SV_TOKEN_DIGEST;

	if (EVP_Digest(token, strlen(token), out, &n, EVP_sha256(), NULL) != 1)
		sv_die(111, "can't hash the token");
}

/*
 * The Authorization header against the token's digest.  Digests are
 * compared, with CRYPTO_memcmp, so the time taken says nothing about
 * the token: not how much of it matched, nor its length.
 */
int
sv_token_ok(const unsigned char want[SV_TOKEN_DIGEST], const char *auth)
{
	unsigned char got[SV_TOKEN_DIGEST];

	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return 0;
	sv_token_digest(auth + 7, got);
	return CRYPTO_memcmp(got, want, SV_TOKEN_DIGEST) == 0;
}

/*
 * Is this Content-Type JSON?  application/json, any case, with or
 * without parameters (charset=utf-8).
 */
int
sv_json_content_type(const char *type)
{
	size_t n = strlen("application/json");

	if (type == NULL)
		return 0;
	while (*type == ' ' || *type == '\t')
		type++;
	if (strncasecmp(type, "application/json", n) != 0)
		return 0;
	type += n;
	while (*type == ' ' || *type == '\t')
		type++;
	return *type == '\0' || *type == ';';
}
