// Admission control: the gate (queue shell), the QoS scheduler (the pure discipline) and the actor.
export { FifoQueue, Gate, type AdmissionQueue, type GateOptions, type Waiting } from './gate';
export { QosScheduler, QosClass, requestCost, assertFlowQos, type FlowQos, type SchedulerOptions, type Schedulable } from './scheduler';
export { admissionActor, admissionSettings, flowQos, type AdmissionSettings } from './actor';
