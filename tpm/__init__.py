"""The device key in a TPM 2.0 (issue 17): the one package that imports tpm2-pytss.

- :mod:`tpm.connect`: :func:`~tpm.connect.open_tpm`, an ESAPI context on a TCTI.
- :mod:`tpm.signer`: the device key (ECDSA P-256, made in the TPM and never leaving it) and
  :class:`~tpm.signer.TpmSigner`, a ``crypto.records.Signer``.
- :mod:`tpm.counter`: :class:`~tpm.counter.TpmCounter`, the NV counter each chain record
  carries.
- :mod:`tpm.attest`: :class:`~tpm.attest.TpmAttestor`, the device's side of enrollment with
  attestation (the dock's side is ``dock.attest``, pure Python).

Callers import these lazily: nothing else of bwv needs tpm2-pytss installed.
"""
