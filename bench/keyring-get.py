"""Python keyring's side of the benchmark: N `keyring.get_password` calls.

    keyring-get.py N

Reads the items `bench/run` stores (service "bench", usernames user-1..user-N)
one after the other, as a Python tool that needs N secrets would. The backend
is whatever PYTHON_KEYRING_BACKEND forces; bench/run sets SecretService.
Exits 1 if an item is missing, so a broken setup cannot pass for a fast one.
"""

import sys

import keyring


def main() -> int:
    count = int(sys.argv[1])
    for i in range(1, count + 1):
        if keyring.get_password("bench", f"user-{i}") is None:
            print(f"keyring-get.py: no item for bench / user-{i}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
