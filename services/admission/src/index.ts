// Admission control's queue discipline, for the QoS scheduler to build on.
export { FifoQueue, Gate, type AdmissionQueue } from './gate';
export { admissionActor, admissionSettings, type AdmissionSettings } from './actor';
