"""Found by newuser9 (a new user's first hour): the codec's refusal of plaintext in an encrypted
store tells the user "(session-store migrate encrypts it)", and ``session-store migrate`` is the
very command that printed it, once per session, without encrypting anything: only
``migrate --encrypt-plaintext`` does. Mended: the message names the flag.

Fix sketch (session_store/codec/codec.py, ``_refuse_plaintext``): say
"(`session-store migrate --encrypt-plaintext` encrypts it, once, when switching a store to
encryption)" instead of "(session-store migrate encrypts it)".
"""

from __future__ import annotations

import pytest

from session_store import AesGcmStage, Codec, CorruptPayloadError


def test_the_refusal_of_plaintext_names_the_flag_that_encrypts_it() -> None:
    plain = Codec().encode("k", {"cart": ["book"]})
    encrypted = Codec(encryption=AesGcmStage([AesGcmStage.generate_key()]))
    with pytest.raises(CorruptPayloadError) as refused:
        encrypted.decode("k", plain)
    assert "refuses plaintext" in refused.value.message  # the refusal itself is right
    assert "--encrypt-plaintext" in refused.value.message
