// Replica placement, shared by the vdisk-controller (a new extent group's replicas) and
// the curator (a replacement for a lost replica): the same rules in one place.
export { place, placeReplacement, type CandidateDisk, type Placement, type PlacementInput, type ReplacementInput } from './place';
