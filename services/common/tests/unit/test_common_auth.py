"""mend_common.auth: Ed25519 staff tokens, API keys, the key cache and the authenticator."""
from __future__ import annotations

import base64
import json
import stat
import time
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from mend_common import auth
from mend_common.auth import (Authenticator, CachedKeyLookup, Principal, TokenIssuer, TokenVerifier, generate_signing_key,
                              hash_secret, issue_api_key, secret_matches, split_api_key)
from mend_common.errors import PermissionDenied, Unauthenticated


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    private, public = d / "token-signing.pem", d / "token-signing.pub.pem"
    generate_signing_key(private, public)
    return private, public


@pytest.fixture(scope="module")
def issuer(keys):
    return TokenIssuer.from_file(keys[0])


@pytest.fixture(scope="module")
def verifier(keys):
    return TokenVerifier.from_file(keys[1])


def _raw_token(keys, **claims):
    """A token signed with the real key but with claims the issuer would never write."""
    now = int(time.time())
    body = {"iss": "mend-local", "aud": "mend", "sub": "u1", "iat": now, "exp": now + 60,
            "roles": ["coordinator"], "counties": ["cumbria"]}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not ...}
    key = serialization.load_pem_private_key(keys[0].read_bytes(), password=None)
    return jwt.encode(body, key, algorithm="EdDSA")


# -- signing keys and tokens ---------------------------------------------------------------
def test_generate_signing_key_writes_a_private_key_only_the_owner_can_read(tmp_path):
    private, public = tmp_path / "sub" / "k.pem", tmp_path / "sub" / "k.pub.pem"
    generate_signing_key(private, public)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    before = (private.read_bytes(), public.read_bytes())
    generate_signing_key(private, public)                    # an existing pair is kept
    assert (private.read_bytes(), public.read_bytes()) == before


def test_issued_token_verifies_as_a_staff_principal(issuer, verifier):
    token = issuer.issue("u42", ["coordinator", "manager"], ["cumbria", "lancashire"], name="Sam Coordinator")
    principal = verifier.verify(token)
    assert principal == Principal(kind="staff", subject="u42", roles=frozenset({"coordinator", "manager"}),
                                  counties=frozenset({"cumbria", "lancashire"}), name="Sam Coordinator")
    assert principal.agency_id is None
    assert principal.label == "staff:u42"


def test_expired_token_is_refused(issuer, verifier):
    token = issuer.issue("u1", ["coordinator"], ["cumbria"], ttl_seconds=-5)
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(token)


def test_wrong_audience_is_refused(keys, verifier):
    with pytest.raises(Unauthenticated):
        verifier.verify(_raw_token(keys, aud="someone-else"))


def test_wrong_issuer_is_refused(keys, verifier):
    other = TokenIssuer(keys[0].read_bytes(), issuer="evil-idp")
    with pytest.raises(Unauthenticated):
        verifier.verify(other.issue("u1", ["admin"], ["cumbria"]))
    # Only the issuer claim differs: a verifier expecting that issuer accepts it, and refuses ours.
    expecting_other = TokenVerifier(keys[1].read_bytes(), issuer="evil-idp")
    assert expecting_other.verify(other.issue("u1", ["admin"], ["cumbria"])).subject == "u1"
    with pytest.raises(Unauthenticated):
        expecting_other.verify(TokenIssuer(keys[0].read_bytes()).issue("u1", ["admin"], ["cumbria"]))


def test_token_signed_by_another_key_is_refused(tmp_path, verifier):
    generate_signing_key(tmp_path / "o.pem", tmp_path / "o.pub")
    forged = TokenIssuer.from_file(tmp_path / "o.pem").issue("u1", ["admin"], ["cumbria"])
    with pytest.raises(Unauthenticated, match="not valid"):
        verifier.verify(forged)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_tampered_token_is_refused(issuer, verifier):
    token = issuer.issue("u1", ["facilitator"], ["cumbria"])
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["admin"]                              # promote yourself
    with pytest.raises(Unauthenticated):
        verifier.verify(".".join([header, _b64(claims), signature]))
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    with pytest.raises(Unauthenticated):
        verifier.verify(".".join([header, payload, flipped]))


def test_unsigned_and_symmetric_tokens_are_refused(keys, verifier):
    claims = {"iss": "mend-local", "aud": "mend", "sub": "u1", "exp": int(time.time()) + 60,
              "roles": ["admin"], "counties": ["cumbria"]}
    unsigned = _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(claims) + "."
    with pytest.raises(Unauthenticated):
        verifier.verify(unsigned)
    hmac_with_public_key = jwt.encode(claims, "a-shared-secret-of-at-least-32-bytes!", algorithm="HS256")
    with pytest.raises(Unauthenticated):
        verifier.verify(hmac_with_public_key)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "a.b"])
def test_malformed_token_is_refused(verifier, token):
    with pytest.raises(Unauthenticated):
        verifier.verify(token)


@pytest.mark.parametrize("missing", ["exp", "sub", "aud", "iss"])
def test_required_claims(keys, verifier, missing):
    with pytest.raises(Unauthenticated):
        verifier.verify(_raw_token(keys, **{missing: ...}))


@pytest.mark.parametrize("roles", [[], ["wizard"], ["coordinator", "wizard"], ["partner"], "coordinator", None,
                                   [["coordinator"]], [{"role": "admin"}], [1]])
def test_tokens_without_valid_staff_roles_are_refused(keys, verifier, roles):
    with pytest.raises(Unauthenticated, match="roles"):
        verifier.verify(_raw_token(keys, roles=roles))


@pytest.mark.parametrize("counties", [[], [""], "cumbria", None, [None], [["cumbria"]]])
def test_tokens_bound_to_no_county_are_refused(keys, verifier, counties):
    with pytest.raises(Unauthenticated, match="county"):
        verifier.verify(_raw_token(keys, counties=counties))


def test_issuer_without_roles_or_counties_gives_a_refused_token(issuer, verifier):
    with pytest.raises(Unauthenticated, match="roles"):
        verifier.verify(issuer.issue("u1", [], ["cumbria"]))
    with pytest.raises(Unauthenticated, match="county"):
        verifier.verify(issuer.issue("u1", ["admin"], []))


# -- principals -------------------------------------------------------------------------------
def test_principal_roles_and_counties():
    p = Principal(kind="agency", subject="a1", roles=frozenset({"partner"}), counties=frozenset({"cumbria"}),
                  agency_id="a1")
    assert p.label == "agency:a1"
    assert p.has_any_role("coordinator", "partner") and not p.has_any_role("admin")
    assert p.covers("cumbria") and not p.covers("lancashire")
    p.require_role("partner")
    with pytest.raises(PermissionDenied, match="admin, coordinator"):
        p.require_role("coordinator", "admin")


# -- API keys --------------------------------------------------------------------------------
def test_issued_api_key_splits_and_matches_its_hash():
    issued = issue_api_key()
    prefix, key_id, _ = issued.api_key.split("_", 2)
    assert prefix == "mend" and key_id == issued.key_id and len(key_id) == 16
    int(key_id, 16)
    assert split_api_key(issued.api_key) == (issued.key_id, issued.api_key[len(f"mend_{key_id}_"):])
    _, secret = split_api_key(issued.api_key)
    assert len(secret) >= 40
    assert issued.secret_hash == hash_secret(secret) and len(issued.secret_hash) == 64
    assert secret not in issued.secret_hash
    assert secret_matches(secret, issued.secret_hash)
    assert not secret_matches(secret + "x", issued.secret_hash)
    assert not secret_matches("", issued.secret_hash)


def test_api_keys_are_unique():
    issued = {issue_api_key().api_key for _ in range(50)}
    assert len(issued) == 50


def test_a_secret_may_contain_underscores():
    assert split_api_key("mend_0123abcd_se_cr_et") == ("0123abcd", "se_cr_et")


@pytest.mark.parametrize("api_key", ["", "mend", "mend_abc", "mend__secret", "mend_abc_", "key_abc_secret",
                                     "MEND_abc_secret", "abc_secret"])
def test_malformed_api_keys_are_refused(api_key):
    with pytest.raises(Unauthenticated, match="malformed"):
        split_api_key(api_key)


def test_hash_secret_is_sha256_hex():
    assert hash_secret("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# -- the key cache --------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(auth, "time", SimpleNamespace(monotonic=c.monotonic, time=time.time))
    return c


AGENCY = Principal(kind="agency", subject="a1", roles=frozenset({"partner"}), counties=frozenset({"cumbria"}),
                   agency_id="a1")


def test_cache_answers_within_ttl_and_looks_up_again_after(clock):
    calls = []

    def lookup(key_id, secret):
        calls.append((key_id, secret))
        return AGENCY

    cached = CachedKeyLookup(lookup, ttl=10)
    assert cached("mend_k1_s1") is AGENCY
    clock.now += 9.9
    assert cached("mend_k1_s1") is AGENCY
    assert calls == [("k1", "s1")]
    clock.now += 0.2                                          # past the ttl
    assert cached("mend_k1_s1") is AGENCY
    assert calls == [("k1", "s1"), ("k1", "s1")]
    clock.now += 5
    cached("mend_k1_s1")
    assert len(calls) == 2                                    # the new entry lasts its own ttl


def test_cache_keys_on_the_whole_api_key(clock):
    calls = []
    cached = CachedKeyLookup(lambda k, s: calls.append((k, s)) or AGENCY, ttl=10)
    cached("mend_k1_s1")
    cached("mend_k1_wrong")
    cached("mend_k2_s1")
    assert calls == [("k1", "s1"), ("k1", "wrong"), ("k2", "s1")]


def test_failed_lookups_are_not_cached(clock):
    calls = []

    def lookup(key_id, secret):
        calls.append(key_id)
        raise Unauthenticated("the API key is not valid")

    cached = CachedKeyLookup(lookup, ttl=10)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            cached("mend_k1_s1")
    assert calls == ["k1", "k1", "k1"]


def test_zero_ttl_never_caches(clock):
    calls = []
    cached = CachedKeyLookup(lambda k, s: calls.append(k) or AGENCY, ttl=0)
    cached("mend_k1_s1")
    cached("mend_k1_s1")
    assert calls == ["k1", "k1"]


def test_malformed_key_is_refused_before_any_lookup(clock):
    cached = CachedKeyLookup(lambda k, s: pytest.fail("must not look up"), ttl=10)
    with pytest.raises(Unauthenticated):
        cached("not-a-key")


# -- the authenticator ----------------------------------------------------------------------------
def test_authenticator_routes_credentials(issuer, verifier):
    seen = []
    authn = Authenticator(verifier, lambda key: seen.append(key) or AGENCY)
    assert authn.authenticate({"x-api-key": "  mend_k_s  "}) is AGENCY
    assert seen == ["mend_k_s"]
    token = issuer.issue("u1", ["auditor"], ["cumbria"])
    assert authn.authenticate({"authorization": f"Bearer {token}"}).subject == "u1"
    assert authn.authenticate({"authorization": f"bearer   {token}"}).roles == frozenset({"auditor"})


@pytest.mark.parametrize("headers", [{}, {"authorization": "Basic dTpw"}, {"authorization": "Bearer "},
                                     {"authorization": "Bearer"}, {"x-api-key": ""}])
def test_authenticator_refuses_missing_or_odd_credentials(verifier, headers):
    with pytest.raises(Unauthenticated):
        Authenticator(verifier, lambda key: AGENCY).authenticate(headers)


def test_authenticator_refuses_a_kind_of_credential_it_does_not_accept(issuer, verifier):
    with pytest.raises(Unauthenticated, match="bearer tokens only"):
        Authenticator(verifier).authenticate({"x-api-key": "mend_k_s"})
    with pytest.raises(Unauthenticated):
        Authenticator(None, lambda key: AGENCY).authenticate(
            {"authorization": f"Bearer {issuer.issue('u1', ['admin'], ['cumbria'])}"})
