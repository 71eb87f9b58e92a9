import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from './respond.ts';

/** Largest REST request body the simulator reads, in bytes; bigger → 413 (the real API's own cap is not published). */
export const MAX_API_BODY_BYTES = 32 * 1024 * 1024;

/** One FastAPI validation error row, as the real API's `422` carries them in `detail`. */
export interface ValidationIssue {
  loc: Array<string | number>;
  msg: string;
  type: string;
}

/** Writes the real API's validation answer: `422 {"detail": [{loc, msg, type}]}`. */
export function sendValidation(res: ServerResponse, issues: ValidationIssue[]): void {
  sendJson(res, 422, { detail: issues });
}

/** Writes a FastAPI-style error (`{"detail": message}`), which the real API answers for 404, 409 and the like. */
export function sendDetail(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { detail: message }, headers);
}

/** A body as read: its bytes' size and digest, and the parsed JSON (undefined when empty or not JSON). */
export interface ReadBody {
  readonly bytes: number;
  readonly sha256: string;
  readonly json: unknown;
  /** The JSON.parse error, when the body is not empty and not JSON. */
  readonly parseError: string | undefined;
}

/** Reads the whole body (bounded by MAX_API_BODY_BYTES: undefined when over), hashing the bytes as they arrive. */
export async function readApiBody(req: IncomingMessage): Promise<ReadBody | undefined> {
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    bytes += buf.length;
    if (bytes > MAX_API_BODY_BYTES) return undefined;
    hash.update(buf);
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let json: unknown;
  let parseError: string | undefined;
  if (text.trim() !== '') {
    try {
      json = JSON.parse(text);
    } catch (error) {
      parseError = (error as Error).message;
    }
  }
  return { bytes, sha256: hash.digest('hex'), json, parseError };
}

/** The 422 issues of a body that must be a JSON object, or undefined when it is one. */
export function objectIssues(body: ReadBody): ValidationIssue[] | undefined {
  if (body.parseError !== undefined) return [{ loc: ['body', 0], msg: `JSON decode error: ${body.parseError}`, type: 'json_invalid' }];
  if (body.json === undefined) return [{ loc: ['body'], msg: 'Field required', type: 'missing' }];
  if (typeof body.json !== 'object' || body.json === null || Array.isArray(body.json)) {
    return [{ loc: ['body'], msg: 'Input should be a valid dictionary or object', type: 'model_attributes_type' }];
  }
  return undefined;
}
