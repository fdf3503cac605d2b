// What each option gets before and after TLS (the NBD spec's "TLS support" section),
// decided from the option and the connection's TLS state alone, so every rule is a
// unit test. A server with TLS configured runs in FORCEDTLS mode: until
// NBD_OPT_STARTTLS has succeeded it answers every option NBD_REP_ERR_TLS_REQD, except
// NBD_OPT_ABORT (which ends the session as always) and NBD_OPT_EXPORT_NAME (which has
// no error reply, so the connection is closed). A server without TLS refuses
// NBD_OPT_STARTTLS by policy and the plain session goes on.
import { NbdOpt, NbdRep } from './protocol';

export interface TlsState {
  /** The server has a certificate: FORCEDTLS. */
  configured: boolean;
  /** NBD_OPT_STARTTLS succeeded: the connection is encrypted and the client authenticated. */
  secured: boolean;
}

export type OptionGate =
  /** Answer the option as usual. */
  | { action: 'handle' }
  /** Acknowledge NBD_OPT_STARTTLS, then upgrade the socket. */
  | { action: 'starttls' }
  /** An error reply; negotiation goes on. */
  | { action: 'refuse'; reply: NbdRep; message: string }
  /** The protocol gives no way to refuse: end the connection. */
  | { action: 'close'; reason: string };

/** The gate an option passes before it is handled; `dataBytes` is its data's length. */
export function gateOption(option: number, dataBytes: number, tls: TlsState): OptionGate {
  if (option === NbdOpt.STARTTLS) return gateStartTls(dataBytes, tls);
  if (!tls.configured || tls.secured || option === NbdOpt.ABORT) return { action: 'handle' };
  if (option === NbdOpt.EXPORT_NAME) return { action: 'close', reason: 'NBD_OPT_EXPORT_NAME before NBD_OPT_STARTTLS: this server requires TLS' };
  return { action: 'refuse', reply: NbdRep.ERR_TLS_REQD, message: 'this server requires TLS: send NBD_OPT_STARTTLS first' };
}

function gateStartTls(dataBytes: number, tls: TlsState): OptionGate {
  if (!tls.configured) return { action: 'refuse', reply: NbdRep.ERR_POLICY, message: 'TLS is not configured on this server' };
  if (tls.secured) return { action: 'refuse', reply: NbdRep.ERR_INVALID, message: 'TLS is already negotiated' };
  if (dataBytes !== 0) return { action: 'refuse', reply: NbdRep.ERR_INVALID, message: 'NBD_OPT_STARTTLS takes no data' };
  return { action: 'starttls' };
}
