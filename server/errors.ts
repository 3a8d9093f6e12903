// OpenAI-style API errors: {"error": {"message", "type", "param", "code"}} with the HTTP status that goes with them.

export class ApiError extends Error {
  override name = 'ApiError';

  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  get type(): string {
    if (this.status === 404) return 'not_found_error';
    if (this.status >= 500) return 'server_error';
    return 'invalid_request_error';
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Any thrown value as an ApiError; what is not one already becomes a 500 whose message has no stack. */
export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(500, 'internal server error', null, 'internal_error');
}
