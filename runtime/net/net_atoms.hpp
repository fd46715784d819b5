// Messages internal to the real transport (between its manager, acceptor, connections, dialers).
#pragma once

#include <caf/atom.hpp>

namespace cmesh::net {

using frame_atom = caf::atom_constant<caf::atom("frame")>;          // manager -> conn: (frame, bytes)
using conn_up_atom = caf::atom_constant<caf::atom("conn_up")>;      // conn -> manager
using conn_fail_atom = caf::atom_constant<caf::atom("conn_fail")>;  // conn -> manager (dialed)
using dial_done_atom = caf::atom_constant<caf::atom("dial_done")>;  // dialer -> manager
using redial_atom = caf::atom_constant<caf::atom("redial")>;        // manager -> itself
using timeout_atom = caf::atom_constant<caf::atom("hs_timeout")>;   // conn -> itself
using close_atom = caf::atom_constant<caf::atom("close")>;          // manager -> conn
using seal_atom = caf::atom_constant<caf::atom("seal")>;            // conn -> itself: seal the outbox

}  // namespace cmesh::net
