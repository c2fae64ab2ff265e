mod accounts;
mod attachments;
mod bad_input;
mod keys;
mod messages;
