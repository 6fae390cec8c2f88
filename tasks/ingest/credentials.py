"""Take the credentials out of a Discord account record before anything keeps it.

The proxies' account endpoints answer with the accounts' Discord credentials in clear
(novicezk's userToken; trueai's userToken, botToken, cookie, login password and 2FA
secret, captcha and invitation links, sub-channel URLs: ../shared/upstream/FACTS-2.md §1.2,
§2.3). `scrub` drops every key whose name looks like one, at any depth and in any case,
so the record that is stored, logged or shown has none. It works on names, not values:
a new credential field that a proxy adds is caught if its name says what it is.

Pure: the standard library only, like records.py.
"""

import re

# Parts of a key's name that mark a credential: loginAccount, loginPassword, login2fa
# (isAutoLogining and loginMessage go too: no health in them), cfUrl and cfHashUrl (the
# captcha's links), permanentInvitationLink, subChannels and subChannelValues (URLs).
CREDENTIAL_KEY = re.compile(
    r"token|cookie|passw|2fa|totp|secret|auth|invit|session|api[-_]?key|private[-_]?key"
    r"|^cf.*url$|login|subchannel|credential",
    re.IGNORECASE,
)
# Deeper than this a value is dropped whole: real records nest about 4 levels.
MAX_DEPTH = 32


def is_credential_key(name):
    return isinstance(name, str) and CREDENTIAL_KEY.search(name) is not None


def scrub(value, depth=0):
    """A copy of value (decoded JSON) without a single credential-named key, at any depth."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {
            key: scrub(item, depth + 1) for key, item in value.items() if not is_credential_key(key)
        }
    if isinstance(value, list):
        return [scrub(item, depth + 1) for item in value]
    return value
