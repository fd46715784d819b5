#include "actors/raft/raft_store.hpp"

#include "messages/codec.hpp"

namespace cmesh::raft {

namespace {

struct stored_hard_state {
  term_t term = 0;
  bytes vote;
  index_t commit = 0;
  MSGPACK_DEFINE(term, vote, commit);
};

struct stored_snapshot {
  index_t index = 0;
  term_t term = 0;
  membership config;
  bytes data;
  MSGPACK_DEFINE(index, term, config, data);
};

std::string_view view(const bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace

std::string log_store::key(char kind) const {
  std::string k;
  k.push_back(static_cast<char>(group_ >> 8));
  k.push_back(static_cast<char>(group_ & 0xff));
  k.push_back(kind);
  return k;
}

std::string log_store::entry_key(index_t index) const {
  std::string k = key('e');
  for (int shift = 56; shift >= 0; shift -= 8) k.push_back(static_cast<char>((index >> shift) & 0xff));
  return k;
}

result<log_store> log_store::open(store& storage, uint32_t group) {
  auto db = storage.open_database("raft");
  if (!db) return db.err();
  return log_store(&storage, *db, group);
}

result<restored_state> log_store::load() {
  restored_state out;
  auto reader = storage_->begin_read();
  if (!reader) return reader.err();
  auto hard = reader->get(db_, key('h'));
  if (!hard) return hard.err();
  if (*hard) {
    auto hs = unpack_value<stored_hard_state>((*hard)->data(), (*hard)->size());
    if (!hs) return error{errc::malformed, "raft hard state: " + hs.err().describe()};
    out.state.term = hs->term;
    if (hs->vote.size() == 32) out.state.vote = node_id::from_bytes(hs->vote.data());
    out.state.commit = hs->commit;
  }
  auto snap = reader->get(db_, key('s'));
  if (!snap) return snap.err();
  if (*snap) {
    auto s = unpack_value<stored_snapshot>((*snap)->data(), (*snap)->size());
    if (!s) return error{errc::malformed, "raft snapshot: " + s.err().describe()};
    snapshot_record rec;
    rec.index = s->index;
    rec.term = s->term;
    rec.config = std::move(s->config);
    rec.data = std::make_shared<const bytes>(std::move(s->data));
    out.snapshot = std::move(rec);
  }
  std::string prefix = key('e');
  error failure;
  auto s = reader->for_each(db_, [&](std::string_view k, std::string_view v) {
    if (k.size() != prefix.size() + 8 || k.substr(0, prefix.size()) != prefix) return true;
    auto e = unpack_value<entry>(reinterpret_cast<const uint8_t*>(v.data()), v.size());
    if (!e) {
      failure = error{errc::malformed, "raft log entry: " + e.err().describe()};
      return false;
    }
    out.log.push_back(std::move(*e));
    return true;
  });
  if (!s.ok()) return s;
  if (failure) return failure;
  // Keep the contiguous run after the snapshot (rows from before a compaction are ignored).
  index_t base = out.snapshot ? out.snapshot->index : 0;
  std::vector<entry> run;
  for (auto& e : out.log) {
    if (e.index <= base) continue;
    if (e.index != base + run.size() + 1) break;
    run.push_back(std::move(e));
  }
  out.log = std::move(run);
  first_ = base + 1;
  last_ = base + out.log.size();
  return out;
}

status log_store::write_snapshot(store::write_txn& txn, const snapshot_record& snapshot) {
  stored_snapshot s{snapshot.index, snapshot.term, snapshot.config,
                    snapshot.data ? *snapshot.data : bytes{}};
  auto packed = pack_value(s);
  if (!packed) return packed.err();
  auto st = txn.put(db_, key('s'), view(*packed));
  for (index_t i = first_; st.ok() && i <= std::min(last_, snapshot.index); ++i)
    st = txn.erase(db_, entry_key(i));
  return st;
}

status log_store::persist(const ready& r, const hard_state& hard) {
  if (!r.must_persist()) return {};
  auto txn = storage_->begin_write();
  if (!txn) return txn.err();
  index_t first = first_, last = last_;
  status st;
  if (r.snapshot) {
    st = write_snapshot(*txn, *r.snapshot);
    first = r.snapshot->index + 1;
    if (last < r.snapshot->index) last = r.snapshot->index;
  }
  if (st.ok() && r.truncate_from) {
    for (index_t i = std::max(*r.truncate_from, first); st.ok() && i <= last; ++i)
      st = txn->erase(db_, entry_key(i));
    if (*r.truncate_from <= last) last = *r.truncate_from - 1;
  }
  for (const auto& e : r.append) {
    if (!st.ok()) break;
    auto packed = pack_value(e);
    if (!packed) return packed.err();
    st = txn->put(db_, entry_key(e.index), view(*packed));
    if (e.index > last) last = e.index;
  }
  if (st.ok() && r.hard_state_changed) {
    stored_hard_state hs{hard.term, bytes(hard.vote.key.begin(), hard.vote.key.end()), hard.commit};
    if (hard.vote.is_zero()) hs.vote.clear();
    auto packed = pack_value(hs);
    if (!packed) return packed.err();
    st = txn->put(db_, key('h'), view(*packed));
  }
  if (st.ok()) st = txn->commit();
  if (st.ok()) st = storage_->sync();
  if (!st.ok()) return st;
  first_ = first;
  last_ = last;
  if (last_ + 1 < first_) last_ = first_ - 1;
  return {};
}

status log_store::save_snapshot(const snapshot_record& snapshot) {
  auto txn = storage_->begin_write();
  if (!txn) return txn.err();
  auto st = write_snapshot(*txn, snapshot);
  if (st.ok()) st = txn->commit();
  if (st.ok()) st = storage_->sync();
  if (st.ok()) first_ = snapshot.index + 1;
  if (last_ + 1 < first_) last_ = first_ - 1;
  return st;
}

}  // namespace cmesh::raft
