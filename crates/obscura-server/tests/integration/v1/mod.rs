mod accounts;
mod attachments;
mod bad_input;
mod expiry;
mod keys;
mod messages;
mod push;
mod tokens;
