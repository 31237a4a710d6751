#!/usr/bin/env bash
# A throwaway software TPM 2.0 (swtpm) for the tests, the simulator and trying the TPM key by
# hand: see simulator/swtpm-temp.sh, which this runs. It lives in the simulator package so
# that an installed bwv's `bwv sim raid --key-store tpm` has it too.
exec bash "$(dirname "${BASH_SOURCE[0]}")/../simulator/swtpm-temp.sh" "$@"
