/** Base of every error the simulator's control API throws; `code` is stable. */
export class SimulatorError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SimulatorError';
    this.code = code;
  }
}

/** The session id names no session (never created, or deleted). */
export class UnknownSessionError extends SimulatorError {
  constructor(id: string) {
    super('unknown_session', `no such session: ${id}`);
    this.name = 'UnknownSessionError';
  }
}

/** createSession was called with an id that already exists. */
export class SessionExistsError extends SimulatorError {
  constructor(id: string) {
    super('session_exists', `session already exists: ${id}`);
    this.name = 'SessionExistsError';
  }
}

/** An argument or a control-API body is malformed, or the call makes no sense now. */
export class InvalidInputError extends SimulatorError {
  constructor(message: string) {
    super('invalid_input', message);
    this.name = 'InvalidInputError';
  }
}

/** The HTTP status the control API answers for an error (500 for anything unexpected). */
export function httpStatusFor(error: unknown): number {
  if (error instanceof UnknownSessionError) return 404;
  if (error instanceof SessionExistsError) return 409;
  if (error instanceof InvalidInputError) return 400;
  return 500;
}
