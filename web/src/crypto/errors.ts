/**
 * The crypto layer's errors, named as in `veil.crypto.errors` so that both SDKs
 * refuse the same input with the same kind of error. Messages name the field, never
 * a secret.
 */

export class VeilCryptoError extends Error {
  override name = "VeilCryptoError";
}

/** A MAC, signature or decryption check failed. */
export class AuthenticationError extends VeilCryptoError {
  override name = "AuthenticationError";
}

/** The key does not open the value, or the value does not descend from its origin. */
export class DecryptionError extends AuthenticationError {
  override name = "DecryptionError";
  constructor() {
    super("the value did not decrypt");
  }
}

export class InvalidSignature extends AuthenticationError {
  override name = "InvalidSignature";
  constructor(message = "the signature did not verify") {
    super(message);
  }
}

/** Bytes that are not a well-formed value of their kind. */
export class DecodeError extends VeilCryptoError {
  override name = "DecodeError";
}

export class InvalidLength extends DecodeError {
  override name = "InvalidLength";
}

export class UnsupportedVersion extends DecodeError {
  override name = "UnsupportedVersion";
}

export class NonCanonicalEncoding extends DecodeError {
  override name = "NonCanonicalEncoding";
}

export class NotOnCurve extends DecodeError {
  override name = "NotOnCurve";
}

export class NotInSubgroup extends DecodeError {
  override name = "NotInSubgroup";
}

export class IdentityElement extends DecodeError {
  override name = "IdentityElement";
}
