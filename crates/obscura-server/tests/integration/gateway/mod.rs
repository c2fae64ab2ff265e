mod acks;
mod bounds;
mod crash;
mod delivery;
mod lifecycle;
