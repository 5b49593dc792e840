/**
 * The SDK's errors, as `veil.client.errors`. Every refusal from a Veil service becomes
 * a `ServiceError` subclass chosen by the service's stable error code (or, failing
 * that, its status). Messages carry ids and causes, never a secret.
 */

export class VeilError extends Error {
  override get name(): string {
    return this.constructor.name;
  }
}

/** A service refused a call; `code` is its stable machine-readable code. */
export class ServiceError extends VeilError {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(`${status} ${code}: ${detail}`);
  }
}

/** 401: the token or signature was missing, stale, replayed or did not verify. */
export class Unauthorized extends ServiceError {}
/** 403: authenticated, but not allowed. */
export class Forbidden extends ServiceError {}
/** This device was revoked: it can neither call the services nor decrypt anything new. */
export class DeviceRevoked extends Forbidden {}
/** The caller is not (or no longer) a member of the group, or no grant reaches it. */
export class NotMember extends Forbidden {}
/** 404. */
export class NotFound extends ServiceError {}
/** 409: it exists already, or a concurrent change won. */
export class Conflict extends ServiceError {}
/** 400, 413 or 422: the service could not accept what was sent. */
export class InvalidRequest extends ServiceError {}
/** 5xx, or the service could not be reached. */
export class Unavailable extends ServiceError {}

/** A key post's member list could not be had yet (tried again later). */
export class MembersChanging extends VeilError {}

/** A user's (or a group's) public keys differ from the ones this device pinned. */
export class PinnedKeyChanged extends VeilError {
  constructor(readonly userId: string) {
    super(`the public key of ${JSON.stringify(userId)} changed since it was pinned`);
  }
}

/** The escrow password did not open the user's escrowed key. */
export class WrongPassword extends VeilError {}
/** A saved device context whose storage key is gone (or is not a non-extractable
 * AES-GCM key): the context cannot be opened, and this device must be set up again. */
export class StorageKeyMissing extends VeilError {}
/** In device-approval mode, no existing device has approved this one (yet). */
export class ApprovalPending extends VeilError {}
/** The meeting did not admit this device. */
export class NotAdmitted extends VeilError {}
/** A device record whose keys its user's (pinned) identity key did not certify. */
export class UncertifiedDevice extends VeilError {}
/** A meeting invitation whose group key is not the key service's for that meeting. */
export class UntrustedInvitation extends VeilError {}
/** A board post that verified but must not be trusted; it is ignored. */
export class UntrustedPost extends VeilError {}
/** A key the key service delivered that does not come from whom it must. */
export class UntrustedKey extends VeilError {}
/** The meeting has ended; its keys are gone. */
export class MeetingEnded extends VeilError {}

type ServiceErrorClass = new (status: number, code: string, detail: string) => ServiceError;

const BY_CODE: ReadonlyMap<string, ServiceErrorClass> = new Map<string, ServiceErrorClass>([
  ["device_revoked", DeviceRevoked],
  ["not_member", NotMember],
  ["no_access", NotMember],
  ["not_your_device", Forbidden],
]);

const BY_STATUS: ReadonlyMap<number, ServiceErrorClass> = new Map<number, ServiceErrorClass>([
  [400, InvalidRequest],
  [401, Unauthorized],
  [403, Forbidden],
  [404, NotFound],
  [409, Conflict],
  [413, InvalidRequest],
  [422, InvalidRequest],
]);

/** `veil.client.errors.service_error`: the code first, then the status. */
export function serviceError(status: number, code: string, detail: string): ServiceError {
  const kind = BY_CODE.get(code) ?? BY_STATUS.get(status) ?? (status >= 500 ? Unavailable : ServiceError);
  return new kind(status, code, detail);
}
