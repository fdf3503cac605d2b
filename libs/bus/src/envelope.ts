// The reply envelope (proto/common.cddl `reply`): exactly one of `ok` (the result)
// or `error` (a stable code, a message for humans, the retryable flag, a hint).
import { z } from 'zod';

export const errorBody = z.strictObject({
  code: z.string(),
  message: z.string(),
  retryable: z.boolean(),
  hint: z.string().optional(),
});

export const replyEnvelope = z.union([z.strictObject({ ok: z.unknown() }), z.strictObject({ error: errorBody })]);
export type ReplyEnvelope = z.infer<typeof replyEnvelope>;
