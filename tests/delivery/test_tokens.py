from __future__ import annotations

import pytest

from clubjapon_ops.delivery.tokens import TokenData, TokenSigner
from clubjapon_ops.errors import ConfigError

KEY = "k" * 32


def test_a_token_names_the_edition_the_address_and_the_language() -> None:
    signer = TokenSigner(KEY)
    token = signer.make_legacy("2025-11-04-lille", "yui@example.com", "ja")
    assert signer.read(token) == TokenData("2025-11-04-lille", "yui@example.com", "ja")
    assert "/" not in token and "+" not in token and "=" not in token


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],  # truncated signature
        lambda t: t[: len(t) // 2],  # cut in the middle
        lambda t: t.split(".")[0],  # no signature
        lambda t: "A" + t[1:],  # payload changed
        lambda t: t.split(".")[0] + "." + "A" * 22,  # signature replaced
        lambda t: "",
        lambda t: "%%%.$$$",
    ],
    ids=["truncated", "half", "unsigned", "tampered", "forged-sig", "empty", "garbage"],
)
def test_bad_tokens_are_refused(mangle: object) -> None:
    signer = TokenSigner(KEY)
    token = signer.make_legacy("2025-11-04-lille", "yui@example.com", "ja")
    assert signer.read(mangle(token)) is None  # type: ignore[operator]


def test_a_token_from_another_key_is_refused() -> None:
    token = TokenSigner("x" * 32).make_legacy("e", "a@example.com", "fr")
    assert TokenSigner(KEY).read(token) is None


def test_short_keys_are_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="CLUBJAPON_SECRET"):
        TokenSigner("short")


def test_a_test_copy_token_reads_as_a_test_copy_and_a_real_one_does_not() -> None:
    signer = TokenSigner(KEY)
    real = signer.make_legacy("2025-11-04-lille", "yui@example.com", "ja")
    test = signer.make_legacy("2025-11-04-lille", "yui@example.com", "ja", test=True)
    assert signer.read(real) == TokenData("2025-11-04-lille", "yui@example.com", "ja")
    assert signer.read(test) == TokenData("2025-11-04-lille", "yui@example.com", "ja",
                                          test=True)


def test_a_real_token_cannot_be_turned_into_a_test_one_or_back() -> None:
    signer = TokenSigner(KEY)
    real = signer.make_legacy("e", "a@example.com", "fr")
    test = signer.make_legacy("e", "a@example.com", "fr", test=True)
    # The same payload, signed for another purpose: neither signature stands for the other,
    # so what decides is the key, never something a reader could edit in the link.
    real_body, real_sig = real.split(".")
    test_body, test_sig = test.split(".")
    assert real_body == test_body and real_sig != test_sig
    for forged in (f"{real_body}.{real_sig}.t", f"t.{real}", real + "t", test[:-1]):
        assert signer.read(forged) is None
    assert TokenSigner("x" * 32).read(test) is None
