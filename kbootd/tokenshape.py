"""The one definition of a bootstrap token's shape, `[a-z0-9]{6}.[a-z0-9]{16}`.

Import-free and below both kbootd.token (the token type) and kbootd.redact (which masks
anything token-shaped), so neither imports the other for it. Kept as pattern strings,
compiled where used: `kbootd token generate` must not pay for `re`.
"""

_ID = "[a-z0-9]{6}"
_SECRET = "[a-z0-9]{16}"
TOKEN_FORMAT = f"{_ID}.{_SECRET}"  # for messages and help
TOKEN_PATTERN = rf"^({_ID})\.({_SECRET})$"
TOKEN_ID_PATTERN = rf"^{_ID}$"
TOKEN_IN_TEXT_PATTERN = rf"\b({_ID})\.({_SECRET})\b"  # a token anywhere in a text: groups id, secret
