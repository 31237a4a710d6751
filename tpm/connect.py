"""Opening the TPM: an ESAPI context on an explicitly named TCTI, with errors a person can act
on instead of a TSS traceback."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tpm2_pytss import ESAPI

DEFAULT_TCTI = "device:/dev/tpmrm0"
TCTI_VARS = ("BWV_TPM_TCTI", "TPM2TOOLS_TCTI")


class TpmError(Exception):
    """Anything the TPM room reports: one plain sentence, never a TSS traceback."""


class TpmUnavailable(TpmError):
    """No TPM could be reached (or tpm2-pytss is missing); the message says what to do."""


def default_tcti(environ: dict[str, str] | None = None) -> str:
    """``BWV_TPM_TCTI``, else ``TPM2TOOLS_TCTI``, else the kernel's resource manager."""
    env = os.environ if environ is None else environ
    for name in TCTI_VARS:
        if env.get(name):
            return env[name]
    return DEFAULT_TCTI


def describe_unreachable(tcti: str) -> str:
    """What a person reads when the TPM behind ``tcti`` does not answer."""
    if tcti.startswith("device"):
        path = tcti.split(":", 1)[1] if ":" in tcti else "/dev/tpmrm0"
        if not os.path.exists(path):
            return f"no TPM at {path}: is the tpm-slb9670 overlay enabled?"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"the TPM at {path} is not open to this user (add it to the group tss)"
        return f"the TPM at {path} does not answer"
    return f"no TPM answers at {tcti} (is swtpm running? scripts/swtpm-temp.sh start)"


def open_tpm(tcti: str | None = None) -> ESAPI:
    """An ESAPI context on ``tcti`` (e.g. ``swtpm:host=127.0.0.1,port=2321`` or
    ``device:/dev/tpmrm0``; default :func:`default_tcti`). The caller closes it (``with``).
    Raises :class:`TpmUnavailable` with a plain message when it cannot be had."""
    name = tcti or default_tcti()
    # the TSS writes its own ERROR lines to stderr; the message raised here says it all
    # (set TSS2_LOG yourself to see them)
    os.environ.setdefault("TSS2_LOG", "all+NONE")
    try:
        from tpm2_pytss import ESAPI, TSS2_Exception
    except ImportError as e:
        raise TpmUnavailable(
            f"tpm2-pytss is not installed ({e}): pip install 'bwv[tpm]' (needs libtss2-dev)"
        ) from None
    try:
        esapi = ESAPI(name)
    except (TSS2_Exception, RuntimeError, OSError) as e:
        raise TpmUnavailable(f"{describe_unreachable(name)} ({e})") from None
    try:
        esapi.get_random(1)  # the TCTI may connect lazily: ask it something
    except (TSS2_Exception, RuntimeError, OSError) as e:
        esapi.close()
        raise TpmUnavailable(f"{describe_unreachable(name)} ({e})") from None
    return esapi
