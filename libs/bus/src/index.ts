// CBOR request/reply and publish/subscribe over NATS, with deadlines, typed errors
// and trace context on every message.
export {
  Bus,
  NoReply,
  connectBus,
  envSecurityOptions,
  CONNECT_ATTEMPT_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
  TIMEOUT_HEADER,
  type BusLogger,
  type BusOptions,
  type ClientSecurity,
  type Handler,
  type RequestContext,
  type RequestOptions,
  type ServeOptions,
  type Service,
} from './bus';
export { replyEnvelope, errorBody, type ReplyEnvelope } from './envelope';
