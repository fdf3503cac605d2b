// Node liveness: heartbeats written by nodes, and the failure detector's rules.
export { FailureDetector, type SeenHeartbeat, type RecordedNode, type Verdict } from './detector';
export { Heartbeater, type HeartbeaterOptions } from './heartbeater';
