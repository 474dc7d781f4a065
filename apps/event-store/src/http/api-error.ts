/** An error the HTTP layer raises itself, already in API.md's shape. Domain code never throws this. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
    readonly details?: unknown,
    readonly headers: Record<string, string> = {},
    /** Sent instead of `{ error, message, details? }` when API.md fixes the body exactly. */
    readonly body?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  static withBody(status: number, body: { error: string } & Record<string, unknown>): ApiError {
    return new ApiError(status, body.error, String(body.message ?? body.error), undefined, {}, body);
  }

  static invalid(message: string, details?: unknown): ApiError {
    return new ApiError(400, 'invalid_request', message, details);
  }

  static notFound(error: string, message: string): ApiError {
    return new ApiError(404, error, message);
  }

  static tooLarge(message: string): ApiError {
    return new ApiError(413, 'payload_too_large', message);
  }

  static unavailable(message: string, retryAfterS = 1): ApiError {
    return new ApiError(503, 'unavailable', message, undefined, { 'Retry-After': String(retryAfterS) });
  }
}

/** The JSON body and headers to send for one failed request. */
export interface ApiErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown> | null;
}
