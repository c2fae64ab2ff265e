mod acks;
mod crash;
mod delivery;
mod lifecycle;
