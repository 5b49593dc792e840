"""The SDK's errors. Every refusal from a Veil service becomes a ``ServiceError``
subclass chosen by the service's stable error code (or, failing that, its status)."""


class VeilError(Exception):
    """Base of every error the SDK raises on purpose."""


class ServiceError(VeilError):
    """A service refused a call; ``code`` is its stable machine-readable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Unauthorized(ServiceError):
    """401: the token or signature was missing, stale, replayed or did not verify."""


class Forbidden(ServiceError):
    """403: authenticated, but not allowed."""


class DeviceRevoked(Forbidden):
    """This device was revoked: it can neither call the services nor decrypt anything new."""


class NotMember(Forbidden):
    """The caller is not (or no longer) a member of the group, or no grant reaches it."""


class NotFound(ServiceError):
    """404."""


class Conflict(ServiceError):
    """409: it exists already, or a concurrent change won."""


class InvalidRequest(ServiceError):
    """400, 413 or 422: the service could not accept what was sent."""


class Unavailable(ServiceError):
    """5xx, or the service could not be reached."""


class MembersChanging(VeilError):
    """A key post's member list could not be had yet: this device did not follow the
    list it changes, and the key service's list is not the post's (the group changed
    since). Tried again after a while, like a service that did not answer."""


class PinnedKeyChanged(VeilError):
    """A user's (or a group's) public keys differ from the ones this device pinned
    earlier. Either the user reset their keys or someone is substituting keys: ask the
    user before accepting the change (``accept_changes=True``). ``user_id`` names the
    user, or the group."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"the public key of {user_id!r} changed since it was pinned")
        self.user_id = user_id


class WrongPassword(VeilError):
    """The escrow password did not open the user's escrowed key."""


class ApprovalPending(VeilError):
    """In device-approval mode, no existing device has approved this one (yet)."""


class NotAdmitted(VeilError):
    """The meeting did not admit this device: no key post could be transformed for it."""


class UncertifiedDevice(VeilError):
    """A device record whose keys its user's (pinned) identity key did not certify: the
    key service is presenting keys that are not the user's. Its posts are refused."""


class UntrustedInvitation(VeilError):
    """A meeting invitation whose group key is not the key service's for that meeting:
    the platform or the key service is handing this device a key of its own."""


class UntrustedPost(VeilError):
    """A board post that verified but must not be trusted (a key from a non-admin, or a
    ciphertext its poster did not make); it is ignored."""


class UntrustedKey(VeilError):
    """A key the key service delivered that does not come from whom it must: a
    transformed value not signed by the key service's transform signer, or a group's
    private key or a document's key whose level-0 ciphertext (its ``origin``) was not
    signed by a device of the user who may have made it (an admin of the group, the
    document's owner), certified by that user's pinned identity key, or that does not
    descend from it. Nothing from it was decrypted."""


class MeetingEnded(VeilError):
    """The meeting has ended; its keys are gone."""


_BY_CODE: dict[str, type[ServiceError]] = {
    "device_revoked": DeviceRevoked,
    "not_member": NotMember,
    "no_access": NotMember,
    "not_your_device": Forbidden,
}
_BY_STATUS: dict[int, type[ServiceError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    422: InvalidRequest,
}


def service_error(status: int, code: str, message: str) -> ServiceError:
    kind = (
        _BY_CODE.get(code)
        or _BY_STATUS.get(status)
        or (Unavailable if status >= 500 else ServiceError)
    )
    return kind(status, code, message)
