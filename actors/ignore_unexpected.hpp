// The default handler every cmesh actor installs for messages it has no handler for.
//
// CAF 0.17 pitfall: caf::drop and caf::print_and_drop (the default) answer an unexpected message
// with sec::unexpected_message, and CAF delivers that answer to the sender as an error message
// even for a plain send. A sender without an error handler then quits with that error. This
// killed a node's transport manager (and with it the listener and every connection) when it told
// every service about a failed dial and one service had no handler for dial_failed.
// ignore_unexpected drops the message without answering anything.
#pragma once

#include <caf/fwd.hpp>
#include <caf/message.hpp>
#include <caf/result.hpp>

namespace cmesh {

inline caf::result<caf::message> ignore_unexpected(caf::scheduled_actor*, caf::message_view&) {
  return caf::message{};
}

}  // namespace cmesh
