-- Wireshark dissector for slided captures (slided run -pcap FILE).
--
-- A slided capture is a classic pcap file with link type LINKTYPE_USER0
-- (147). Each record is one link frame as decoded on air, COBS and CRC-32C
-- removed (docs/frame-format.md; kinds 2..4 in docs/link-arq.md):
--
--   byte 0   version (high nibble, 1 to 4) | kind (low nibble)
--   byte 1   destination node id (0xFF broadcast)
--   byte 2   source node id
--   3..      payload:
--     kind 0 data      EtherType (2 bytes) + Ethernet payload; the Ethernet
--                      header is rebuilt from the node ids (02:53:4c:44:00:NN)
--     kind 1 ethernet  a whole Ethernet frame (no FCS)
--     kind 2 fragment  flags|inner kind, seq, index, count, fragment bytes;
--                      reassembled across frames, the whole packet is
--                      dissected as Ethernet/IP in the frame that completes it
--     kind 3 ack       seq, count, bitmap of the fragments held
--     kind 4 sealed    48-bit counter, ChaCha20 ciphertext of (inner kind,
--                      inner payload), 8-byte Poly1305 tag; opened when the
--                      preference slided.key_file names the network's key file
--     kind 5 signed    48-bit counter, inner kind, inner payload in clear,
--                      8-byte Poly1305 tag (slided run -key-mode sign); the
--                      payload is always shown, the tag checked with the key
--     kind 6 iphc      a kind 0 payload with its IPv4/IPv6 and UDP headers
--                      (version 2) or TCP headers (version 3) compressed,
--                      and in version 4 maybe their checksum elided; the
--                      headers are rebuilt (an elided checksum recomputed)
--                      and the packet dissected as Ethernet/IP
--     kind 7 hello     the highest version the sender speaks (1 byte)
--
-- Use:
--   tshark -X lua_script:slided.lua -r air.pcap
--   tshark -X lua_script:slided.lua -o slided.key_file:/etc/slided/key -r air.pcap
--   wireshark -X lua_script:slided.lua air.pcap
-- or copy the file to ~/.local/lib/wireshark/plugins/ (Wireshark 3.6+).
-- Checked with Wireshark 4.0 (Lua 5.2). Bad input never raises a Lua error:
-- it is shown with the expert info slided.malformed.

local slided = Proto("slided", "slided link frame")

local KIND_DATA, KIND_ETHERNET, KIND_FRAGMENT, KIND_ACK, KIND_SEALED, KIND_SIGNED = 0, 1, 2, 3, 4, 5
local KIND_IPHC, KIND_HELLO = 6, 7
local MAX_VERSION = 4
local kinds = { [0] = "data", [1] = "ethernet", [2] = "fragment", [3] = "ack", [4] = "sealed", [5] = "signed",
    [6] = "iphc", [7] = "hello" }
local MAX_FRAGMENTS = 64
local MAX_ACK_RECORDS, ACKS_MAX_LEN, ACK_MORE = 16, 64, 0x80 -- version-2 Acks (framing.ParseAcks)
local SEAL_COUNTER, SEAL_TAG = 6, 8

local function kind_name(k)
    return kinds[k] or ("reserved kind " .. k)
end

-- Fields. Filter names are listed in docs/frame-format.md ("Reading a capture").
local f = {
    version   = ProtoField.uint8("slided.version", "Version", base.DEC, nil, 0xF0),
    kind      = ProtoField.uint8("slided.kind", "Kind", base.DEC, kinds, 0x0F),
    dst       = ProtoField.uint8("slided.dst", "Destination node", base.DEC),
    src       = ProtoField.uint8("slided.src", "Source node", base.DEC),
    ethertype = ProtoField.uint16("slided.ethertype", "EtherType (compact header)", base.HEX),

    frag_flags    = ProtoField.uint8("slided.frag.flags", "Flags and inner kind", base.HEX),
    frag_ackreq   = ProtoField.bool("slided.frag.ackreq", "AckReq", 8, nil, 0x80),
    frag_first    = ProtoField.bool("slided.frag.first", "First", 8, nil, 0x40),
    frag_reserved = ProtoField.uint8("slided.frag.reserved", "Reserved", base.HEX, nil, 0x30),
    frag_inner    = ProtoField.uint8("slided.frag.inner", "Inner kind", base.DEC, kinds, 0x0F),
    frag_seq      = ProtoField.uint8("slided.frag.seq", "Seq", base.DEC),
    frag_index    = ProtoField.uint8("slided.frag.index", "Index", base.DEC),
    frag_count    = ProtoField.uint8("slided.frag.count", "Count", base.DEC),
    frag_data     = ProtoField.bytes("slided.frag.data", "Fragment bytes"),
    frag_dup      = ProtoField.framenum("slided.frag.duplicate_of", "Retransmission of the fragment in frame"),
    frag_in       = ProtoField.framenum("slided.frag.reassembled_in", "Reassembled in frame"),
    fragment      = ProtoField.framenum("slided.fragment", "Fragment in frame"),
    reasm_len     = ProtoField.uint32("slided.reassembled.length", "Reassembled packet length", base.DEC),

    ack_seq      = ProtoField.uint8("slided.ack.seq", "Acknowledged seq", base.DEC),
    ack_count    = ProtoField.uint8("slided.ack.count", "Fragments in the packet", base.DEC),
    ack_bitmap   = ProtoField.bytes("slided.ack.bitmap", "Bitmap"),
    ack_held     = ProtoField.uint8("slided.ack.held", "Fragments held", base.DEC),
    ack_missing  = ProtoField.uint8("slided.ack.missing", "Missing fragment", base.DEC),
    ack_complete = ProtoField.bool("slided.ack.complete", "Complete"),
    ack_record   = ProtoField.bytes("slided.ack.record", "Record"),
    ack_more     = ProtoField.bool("slided.ack.more", "More: data follows this Ack"),
    ack_packet   = ProtoField.framenum("slided.ack.packet_in", "Acknowledged packet reassembled in frame"),

    sealed_counter = ProtoField.uint64("slided.sealed.counter", "Counter", base.DEC),
    sealed_ct      = ProtoField.bytes("slided.sealed.ciphertext", "Ciphertext"),
    sealed_tag     = ProtoField.bytes("slided.sealed.tag", "Tag (Poly1305, first 8 bytes)"),
    sealed_opened  = ProtoField.bool("slided.sealed.opened", "Opened with the key"),
    sealed_inner   = ProtoField.uint8("slided.sealed.inner", "Inner kind", base.DEC, kinds),

    signed_counter  = ProtoField.uint64("slided.signed.counter", "Counter", base.DEC),
    signed_inner    = ProtoField.uint8("slided.signed.inner", "Inner kind", base.DEC, kinds),
    signed_tag      = ProtoField.bytes("slided.signed.tag", "Tag (Poly1305, first 8 bytes)"),
    signed_verified = ProtoField.bool("slided.signed.verified", "Tag verified with the key"),

    iphc_dispatch = ProtoField.uint8("slided.iphc.dispatch", "Compressed header dispatch", base.HEX),
    iphc_ck       = ProtoField.bool("slided.iphc.ck", "UDP or TCP checksum elided, recomputed by the receiver (version 4)", 8, nil, 0x80),
    iphc_ip       = ProtoField.uint8("slided.iphc.ip", "IP version", base.DEC, { [0] = "IPv4", [1] = "IPv6" }, 0x40),
    iphc_nh       = ProtoField.bool("slided.iphc.udp", "UDP header compressed", 8, nil, 0x20),
    iphc_hl       = ProtoField.bool("slided.iphc.ttl64", "TTL / hop limit 64 (elided)", 8, nil, 0x10),
    iphc_tf       = ProtoField.bool("slided.iphc.tf", "TOS / traffic class and flow label carried", 8, nil, 0x08),
    iphc_df       = ProtoField.bool("slided.iphc.df", "Don't fragment (IPv4)", 8, nil, 0x04),
    iphc_id0      = ProtoField.bool("slided.iphc.id0", "Identification 0 (IPv4, elided)", 8, nil, 0x02),
    iphc_tc       = ProtoField.bool("slided.iphc.tcp", "TCP header compressed (version 3)", 8, nil, 0x01),
    iphc_len      = ProtoField.uint8("slided.iphc.length", "Compressed header length", base.DEC),
    iphc_saved    = ProtoField.uint8("slided.iphc.saved", "Bytes saved (against kind 0)", base.DEC),

    hello_version = ProtoField.uint8("slided.hello.version", "Highest version spoken", base.DEC),
}
local fields = {}
for _, v in pairs(f) do
    fields[#fields + 1] = v
end
slided.fields = fields

local e = {
    malformed   = ProtoExpert.new("slided.malformed", "Malformed slided frame",
        expert.group.MALFORMED, expert.severity.ERROR),
    reserved    = ProtoExpert.new("slided.reserved_kind", "Reserved kind: not sent by this version of slided",
        expert.group.UNDECODED, expert.severity.WARN),
    truncated   = ProtoExpert.new("slided.truncated", "Frame cut by the capture's snap length",
        expert.group.UNDECODED, expert.severity.WARN),
    duplicate   = ProtoExpert.new("slided.frag.retransmission", "Retransmitted fragment",
        expert.group.SEQUENCE, expert.severity.NOTE),
    reassembled = ProtoExpert.new("slided.reassembled", "Packet reassembled",
        expert.group.REASSEMBLE, expert.severity.CHAT),
    no_key      = ProtoExpert.new("slided.sealed.no_key", "Sealed frame not opened: no key (preference slided.key_file)",
        expert.group.DECRYPTION or expert.group.SECURITY, expert.severity.NOTE),
    forged      = ProtoExpert.new("slided.sealed.auth_failed", "Sealed frame failed authentication under the key",
        expert.group.DECRYPTION or expert.group.SECURITY, expert.severity.WARN),
    bad_key     = ProtoExpert.new("slided.sealed.bad_key", "Key file unusable",
        expert.group.DECRYPTION or expert.group.SECURITY, expert.severity.WARN),
}
slided.experts = { e.malformed, e.reserved, e.truncated, e.duplicate, e.reassembled, e.no_key, e.forged, e.bad_key }

slided.prefs.key_file = Pref.string("Key file", "",
    "The network's pre-shared key file (64 hex digits, as slided run -key reads it); sealed frames are opened with it")

local eth_dissector = Dissector.get("eth_withoutfcs")
local data_dissector = Dissector.get("data")

---------------------------------------------------------------------------
-- ChaCha20-Poly1305 (RFC 8439), on Lua 5.2 numbers and bit32: enough to open
-- auth's envelope. Byte strings are Lua strings.

local band, bxor, lrot = bit32.band, bit32.bxor, bit32.lrotate
local TWO32 = 4294967296

local function qr(x, a, b, c, d)
    x[a] = (x[a] + x[b]) % TWO32; x[d] = lrot(bxor(x[d], x[a]), 16)
    x[c] = (x[c] + x[d]) % TWO32; x[b] = lrot(bxor(x[b], x[c]), 12)
    x[a] = (x[a] + x[b]) % TWO32; x[d] = lrot(bxor(x[d], x[a]), 8)
    x[c] = (x[c] + x[d]) % TWO32; x[b] = lrot(bxor(x[b], x[c]), 7)
end

local function le32(s, i) -- 1-based offset into a string
    local a, b, c, d = s:byte(i, i + 3)
    return a + b * 256 + c * 65536 + d * 16777216
end

-- chacha_block returns the 64-byte keystream block (a table of 64 bytes,
-- 1-based) for key (32-byte string), block counter and nonce (12-byte string).
local function chacha_block(key, counter, nonce)
    local s = { 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574 }
    for i = 0, 7 do s[5 + i] = le32(key, 1 + 4 * i) end
    s[13] = counter
    for i = 0, 2 do s[14 + i] = le32(nonce, 1 + 4 * i) end
    local x = {}
    for i = 1, 16 do x[i] = s[i] end
    for _ = 1, 10 do
        qr(x, 1, 5, 9, 13); qr(x, 2, 6, 10, 14); qr(x, 3, 7, 11, 15); qr(x, 4, 8, 12, 16)
        qr(x, 1, 6, 11, 16); qr(x, 2, 7, 12, 13); qr(x, 3, 8, 9, 14); qr(x, 4, 5, 10, 15)
    end
    local out = {}
    for i = 1, 16 do
        local v = (x[i] + s[i]) % TWO32
        for j = 0, 3 do
            out[#out + 1] = v % 256
            v = math.floor(v / 256)
        end
    end
    return out
end

-- chacha_xor returns data XORed with the keystream from block counter 1.
local function chacha_xor(key, nonce, data)
    local out, block = {}, 1
    for off = 1, #data, 64 do
        local ks = chacha_block(key, block, nonce)
        block = block + 1
        for i = 0, math.min(63, #data - off) do
            out[#out + 1] = string.char(bxor(data:byte(off + i), ks[i + 1]))
        end
    end
    return table.concat(out)
end

-- Poly1305 after TweetNaCl's crypto_onetimeauth: 17 limbs of 8 bits, which
-- Lua's doubles multiply exactly.
local function add1305(h, c)
    local u = 0
    for j = 0, 16 do
        u = u + h[j] + c[j]
        h[j] = u % 256
        u = math.floor(u / 256)
    end
end

local minusp = { [0] = 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 252 }

local function poly1305(msg, k) -- msg, k: strings; returns the 16-byte tag as a string
    local r, h = {}, {}
    for j = 0, 16 do r[j], h[j] = 0, 0 end
    for j = 0, 15 do r[j] = k:byte(j + 1) end
    r[3] = r[3] % 16; r[4] = band(r[4], 252); r[7] = r[7] % 16; r[8] = band(r[8], 252)
    r[11] = r[11] % 16; r[12] = band(r[12], 252); r[15] = r[15] % 16
    local n, pos = #msg, 1
    while n > 0 do
        local c = {}
        for j = 0, 16 do c[j] = 0 end
        local j = 0
        while j < 16 and j < n do
            c[j] = msg:byte(pos + j)
            j = j + 1
        end
        c[j] = 1
        pos, n = pos + j, n - j
        add1305(h, c)
        local x = {}
        for i = 0, 16 do
            local s = 0
            for jj = 0, 16 do
                if jj <= i then
                    s = s + h[jj] * r[i - jj]
                else
                    s = s + h[jj] * 320 * r[i + 17 - jj]
                end
            end
            x[i] = s
        end
        for i = 0, 16 do h[i] = x[i] end
        local u = 0
        for jj = 0, 15 do
            u = u + h[jj]; h[jj] = u % 256; u = math.floor(u / 256)
        end
        u = u + h[16]; h[16] = u % 4; u = 5 * math.floor(u / 4)
        for jj = 0, 15 do
            u = u + h[jj]; h[jj] = u % 256; u = math.floor(u / 256)
        end
        h[16] = u + h[16]
    end
    local g = {}
    for j = 0, 16 do g[j] = h[j] end
    add1305(h, minusp)
    if h[16] >= 128 then -- h < p: keep h as it was
        for j = 0, 16 do h[j] = g[j] end
    end
    local c = {}
    for j = 0, 15 do c[j] = k:byte(j + 17) end
    c[16] = 0
    add1305(h, c)
    local out = {}
    for j = 0, 15 do out[#out + 1] = string.char(h[j]) end
    return table.concat(out)
end

local function pad16(s)
    local r = #s % 16
    if r == 0 then return s end
    return s .. string.rep("\0", 16 - r)
end

local function le64(n)
    local out = {}
    for _ = 1, 8 do
        out[#out + 1] = string.char(n % 256)
        n = math.floor(n / 256)
    end
    return table.concat(out)
end

-- open_envelope checks and decrypts auth's envelope (a string) of a frame
-- with header bytes hdr (a 3-byte string) from node src. It returns the
-- plaintext (inner kind byte, inner payload) or nil when the tag does not
-- match.
local function open_envelope(key, hdr, src, env)
    local ctr = env:sub(1, SEAL_COUNTER)
    local nonce = string.char(src, 0, 0, 0, 0, 0) .. ctr
    local ct, tag = env:sub(SEAL_COUNTER + 1, #env - SEAL_TAG), env:sub(#env - SEAL_TAG + 1)
    local otk = table.concat((function()
        local b, t = chacha_block(key, 0, nonce), {}
        for i = 1, 32 do t[i] = string.char(b[i]) end
        return t
    end)())
    local mac = poly1305(pad16(hdr) .. pad16(ct) .. le64(#hdr) .. le64(#ct), otk)
    if mac:sub(1, SEAL_TAG) ~= tag then
        return nil
    end
    return chacha_xor(key, nonce, ct)
end

-- signed_ok checks the tag of auth's signed envelope (a string; sign mode):
-- the tag of an empty plaintext with the header and the envelope without its
-- tag as additional data, under the nonce src, 1, four 0, counter.
local function signed_ok(key, hdr, src, env)
    local ctr = env:sub(1, SEAL_COUNTER)
    local nonce = string.char(src, 1, 0, 0, 0, 0) .. ctr
    local ad, tag = hdr .. env:sub(1, #env - SEAL_TAG), env:sub(#env - SEAL_TAG + 1)
    local b, t = chacha_block(key, 0, nonce), {}
    for i = 1, 32 do t[i] = string.char(b[i]) end
    local mac = poly1305(pad16(ad) .. le64(#ad) .. le64(0), table.concat(t))
    return mac:sub(1, SEAL_TAG) == tag
end

-- The keys, loaded from the preference as slided run -key reads its file
-- (auth.LoadKeys): one key, or two during a changeover, one per line of 64
-- hex digits; blank lines and lines starting with # are ignored. key_err
-- says why the file is unusable.
local keys, key_err, key_path

local function load_key()
    local path = slided.prefs.key_file or ""
    if path == key_path then return end
    keys, key_err, key_path = nil, nil, path
    if path == "" then return end
    local fh, err = io.open(path, "rb")
    if not fh then
        key_err = "cannot open key file: " .. tostring(err)
        return
    end
    local text = fh:read(1024) or ""
    fh:close()
    local found = {}
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        line = line:gsub("^%s+", ""):gsub("%s+$", "")
        if line ~= "" and line:sub(1, 1) ~= "#" then
            if #line ~= 64 or line:find("[^%x]") then
                key_err = "key file " .. path .. ": a line is not 64 hex digits"
                return
            end
            found[#found + 1] = line:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
        end
    end
    if #found == 0 or #found > 2 then
        key_err = "key file " .. path .. ": want one key, or two during a changeover"
        return
    end
    keys = found
end

function slided.prefs_changed()
    key_path = nil
    load_key()
end

---------------------------------------------------------------------------
-- Reassembly state, rebuilt on every pass over the file (slided.init). The
-- first pass (pinfo.visited false) computes each frame's result and stores
-- it in results[frame number]; later passes (the GUI) only read it.

local buffers  -- "src:dst:seq" -> {count, inner, frags = {[index] = string}, frames = {[index] = frame}, held, done}
local latest   -- "src:dst" -> seq of the last packet reassembled from src to dst
local firstseq -- "src:dst" -> seq of the First packet that began the sender's numbering
local results  -- frame number -> {dup, reasm = string, inner, frames, reasm_in, packet_in}

local function reset()
    buffers, latest, firstseq, results = {}, {}, {}, {}
    key_path = nil
end
reset()
slided.init = reset

-- ahead reports whether seq a is 1..127 after b, modulo 256.
local function ahead(a, b)
    local d = (a - b) % 256
    return d >= 1 and d <= 127
end

-- fragment_arrived adds one fragment to the reassembly state and returns
-- this frame's result: dup (the frame of the same fragment before), or reasm
-- (the whole packet, when this fragment completes it).
local function fragment_arrived(num, src, dst, seq, index, count, inner, first, bytes)
    local pair = src .. ":" .. dst
    local k = pair .. ":" .. seq
    if first and not (firstseq[pair] == seq and (latest[pair] == nil or latest[pair] == seq)) then
        -- A First fragment of another packet than the one the sender's
        -- numbering began with (or one since followed by others): the
        -- sender restarted. Forget its previous life, as the receiver does
        -- (docs/link-arq.md, "A sender that restarts").
        for k2 in pairs(buffers) do
            if k2:sub(1, #pair + 1) == pair .. ":" then buffers[k2] = nil end
        end
        latest[pair], firstseq[pair] = nil, seq
    end
    local b = buffers[k]
    if b and b.done then
        if latest[pair] and not ahead(seq, latest[pair]) then
            local res = { dup = b.frames[index], packet_in = b.done }
            return res
        end
        b = nil -- the sender has moved on: the number is reused
    end
    if b and (b.count ~= count or b.inner ~= inner) then
        b = nil -- as the receiver does: count or kind changing restarts
    end
    if not b then
        b = { count = count, inner = inner, frags = {}, frames = {}, held = 0 }
        buffers[k] = b
    end
    if b.frags[index] then
        return { dup = b.frames[index] }
    end
    b.frags[index], b.frames[index] = bytes, num
    b.held = b.held + 1
    if b.held < count then
        return {}
    end
    local parts = {}
    for i = 0, count - 1 do parts[#parts + 1] = b.frags[i] end
    b.frags, b.done = {}, num
    latest[pair] = seq
    local res = { reasm = table.concat(parts), inner = inner, frames = b.frames }
    for i = 0, count - 1 do
        local r = results[b.frames[i]]
        if r then r.reasm_in = num end
    end
    return res
end

---------------------------------------------------------------------------
-- Dissection.

local function node_name(id)
    if id == 0xFF then return "broadcast" end
    return "node " .. id
end

local function mac_for(id)
    if id == 0xFF then return "ffffffffffff" end
    return string.format("02534c4400%02x", id)
end

-- The Info column of the frame being dissected: what the link carries
-- (cur_what) and remarks such as [Malformed] (cur_marks), written once at
-- the end of slided.dissector.
local cur_what, cur_marks = {}, {}
-- cur_version is the version nibble of the frame being dissected (the
-- envelope authenticates it).
local cur_version = 1

local function info(s)
    cur_what[#cur_what + 1] = s
end

local function mark(s)
    cur_marks[#cur_marks + 1] = "[" .. s .. "]"
end

local function malformed(item, pinfo, text)
    item:add_proto_expert_info(e.malformed, text)
    mark("Malformed: " .. text)
end

-- call_eth hands an Ethernet frame to Wireshark's dissector; an exception in
-- it (a malformed inner packet) is already shown in the tree by Wireshark,
-- and must not become a Lua error here.
local function call_eth(tvb, pinfo, tree)
    pcall(function() eth_dissector:call(tvb, pinfo, tree) end)
end

local function call_data(tvb, pinfo, tree)
    pcall(function() data_dissector:call(tvb, pinfo, tree) end)
end

-- dissect_packet shows a whole packet of kind 0, 1 or 6 (a plain frame's
-- payload or a reassembled one) as Ethernet. bytes is a TvbRange.
-- iphc_rebuild returns the EtherType, IP and UDP or TCP header bytes (a string)
-- that a kind 6 payload p (a string) stands for and the length of its
-- compressed headers, or nil and the reason (framing/iphc.go, AppendIPHCData).
local function iphc_rebuild(p)
    if #p < 1 then return nil, "compressed header: no dispatch byte" end
    local d = p:byte(1)
    local v6, ck = band(d, 0x40) ~= 0, band(d, 0x80) ~= 0
    if v6 and band(d, 0x06) ~= 0 then return nil, "compressed header: IPv4 flags on IPv6" end
    local nh, hl, tf, tc = band(d, 0x20) ~= 0, band(d, 0x10) ~= 0, band(d, 0x08) ~= 0, band(d, 0x01) ~= 0
    if nh and tc then return nil, "compressed header: UDP and TCP (dispatch bits 5 and 0)" end
    if ck and not nh and not tc then return nil, "compressed header: checksum elided without UDP or TCP (dispatch bit 7)" end
    local cklen = ck and 0 or 2 -- the UDP or TCP checksum's carried bytes
    local n = 1
    if tf then n = n + (v6 and 4 or 1) end
    if not v6 and band(d, 0x02) == 0 then n = n + 2 end
    if not hl then n = n + 1 end
    if not nh and not tc then n = n + 1 end
    n = n + (v6 and 32 or 8)
    if nh then n = n + 4 + cklen end
    -- TCP (version 3): control byte, [options words], [flags], 14 or 16 bytes,
    -- [urgent pointer], options (framing/iphc.go).
    local l4, tform, tflags, olen = (nh and 8 or 0), 0, 0, 0
    if tc then
        if #p < n + 1 then return nil, "compressed header: TCP control byte cut" end
        local ctl = p:byte(n + 1)
        n = n + 1
        tform, tflags = band(ctl, 0xC0), band(ctl, 0x1F)
        if tform == 0x40 then
            olen = 12
        elseif tform == 0x80 then
            if #p < n + 1 then return nil, "compressed header: TCP options length cut" end
            local w = p:byte(n + 1)
            n = n + 1
            if w < 1 or w > 10 then return nil, "compressed header: TCP options of " .. w .. " words" end
            olen = 4 * w
        elseif tform == 0xC0 then
            return nil, "compressed header: reserved TCP options form"
        end
        if band(ctl, 0x20) ~= 0 then
            if tflags ~= 0 then return nil, "compressed header: TCP flags byte and flag bits" end
            if #p < n + 1 then return nil, "compressed header: TCP flags cut" end
            tflags = p:byte(n + 1)
            n = n + 1
        end
        n = n + 14 + cklen + olen
        if band(tflags, 0x20) ~= 0 then n = n + 2 end
        if tform == 0x40 then n = n - 4 end
        l4 = 20 + olen
    end
    if #p < n then
        return nil, string.format("compressed header of %d bytes, payload of %d", n, #p)
    end
    local pos = 2
    local function take(k)
        local b = p:sub(pos, pos + k - 1)
        pos = pos + k
        return b
    end
    local rest = #p - n
    local out, addrs
    if not v6 then
        local tos, id = "\0", "\0\0"
        if tf then tos = take(1) end
        if band(d, 0x02) == 0 then id = take(2) end
        local ttl = "\64"
        if not hl then ttl = take(1) end
        local proto = nh and "\17" or "\6"
        if not nh and not tc then proto = take(1) end
        addrs = take(8)
        local total = 20 + rest + l4
        if total > 65535 then return nil, "compressed header: IPv4 packet over 65535 bytes" end
        local flags = band(d, 0x04) ~= 0 and "\64\0" or "\0\0"
        local h = "\69" .. tos .. string.char(math.floor(total / 256), total % 256) .. id .. flags .. ttl .. proto
        local sum = 0
        local hs = h .. "\0\0" .. addrs
        for i = 1, 20, 2 do sum = sum + hs:byte(i) * 256 + hs:byte(i + 1) end
        while sum > 0xFFFF do sum = band(sum, 0xFFFF) + math.floor(sum / 65536) end
        sum = 0xFFFF - sum
        out = "\8\0" .. h .. string.char(math.floor(sum / 256), sum % 256) .. addrs
    else
        local first = "\96\0\0\0"
        if tf then
            first = take(4)
            if math.floor(first:byte(1) / 16) ~= 6 then return nil, "compressed header: carried IPv6 bytes without version 6" end
        end
        local nxt = nh and "\17" or "\6"
        if not nh and not tc then nxt = take(1) end
        local hop = "\64"
        if not hl then hop = take(1) end
        addrs = take(32)
        local plen = rest + l4
        if plen > 65535 then return nil, "compressed header: IPv6 payload over 65535 bytes" end
        out = "\134\221" .. first .. string.char(math.floor(plen / 256), plen % 256) .. nxt .. hop .. addrs
    end
    -- l4sum is the UDP (proto 17) or TCP (6) checksum of the header h
    -- (its checksum field zero) and the rest of p, with the pseudo-header
    -- of addrs (IPv4 and IPv6 sum the same words); UDP sends 0 as 0xFFFF.
    local function l4sum(proto, h)
        local seg = h .. p:sub(n + 1)
        local len = #seg
        if len % 2 == 1 then seg = seg .. "\0" end
        local sum = proto + len
        for i = 1, #addrs, 2 do sum = sum + addrs:byte(i) * 256 + addrs:byte(i + 1) end
        for i = 1, #seg, 2 do sum = sum + seg:byte(i) * 256 + seg:byte(i + 1) end
        while sum > 0xFFFF do sum = band(sum, 0xFFFF) + math.floor(sum / 65536) end
        sum = 0xFFFF - sum
        if sum == 0 and proto == 17 then sum = 0xFFFF end
        return string.char(math.floor(sum / 256), sum % 256)
    end
    if nh then
        local ports = take(4)
        local ul = 8 + rest
        local u = ports .. string.char(math.floor(ul / 256), ul % 256)
        if ck then
            out = out .. u .. l4sum(17, u .. "\0\0")
        else
            out = out .. u .. take(2)
        end
    end
    if tc then
        local ctl = take(1):byte(1)
        if tform == 0x80 then take(1) end -- the options' length, in l4
        if band(ctl, 0x20) ~= 0 then take(1) end -- the flags, in tflags
        local psa, win = take(12), take(2)
        local sum = "\0\0"
        if not ck then sum = take(2) end
        local urg = "\0\0"
        if band(tflags, 0x20) ~= 0 then urg = take(2) end
        local opts = ""
        if tform == 0x40 then
            opts = "\1\1\8\10" .. take(8)
        elseif tform == 0x80 then
            opts = take(olen)
        end
        local head = psa .. string.char(math.floor(l4 / 4) * 16, tflags) .. win
        if ck then sum = l4sum(6, head .. sum .. urg .. opts) end
        out = out .. head .. sum .. urg .. opts
    end
    return out, n
end

local function dissect_packet(kind, dst, src, range, pinfo, tree, item)
    if kind == KIND_IPHC then
        local raw = range:raw()
        local hdr, n = iphc_rebuild(raw)
        if range:len() >= 1 then
            local dt = item:add(f.iphc_dispatch, range(0, 1))
            for _, fl in ipairs({ f.iphc_ck, f.iphc_ip, f.iphc_nh, f.iphc_hl, f.iphc_tf, f.iphc_df, f.iphc_id0, f.iphc_tc }) do
                dt:add(fl, range(0, 1))
            end
        end
        if not hdr then
            malformed(item, pinfo, n)
            return
        end
        item:add(f.iphc_len, range(0, n), n)
        item:add(f.iphc_saved, range(0, n), #hdr - n):set_generated()
        local eth = ByteArray.new(mac_for(dst) .. mac_for(src)) .. ByteArray.new(hdr, true)
        if range:len() > n then eth = eth .. range(n):bytes() end
        call_eth(eth:tvb("Ethernet (rebuilt from the compressed header)"), pinfo, tree)
    elseif kind == KIND_DATA then
        if range:len() < 2 then
            malformed(item, pinfo, "data payload shorter than its 2-byte EtherType")
            return
        end
        item:add(f.ethertype, range(0, 2))
        local eth = ByteArray.new(mac_for(dst) .. mac_for(src)) .. range:bytes()
        call_eth(eth:tvb("Ethernet (rebuilt from the compact header)"), pinfo, tree)
    elseif kind == KIND_ETHERNET then
        if range:len() < 14 then
            malformed(item, pinfo, "Ethernet payload shorter than its 14-byte header")
            return
        end
        call_eth(range:tvb(), pinfo, tree)
    else
        item:add_proto_expert_info(e.reserved, "packet of " .. kind_name(kind))
        call_data(range:tvb(), pinfo, tree)
    end
end

local dissect_body -- forward

local function dissect_fragment(dst, src, range, pinfo, tree, item)
    if range:len() < 4 then
        malformed(item, pinfo, "fragment shorter than its 4-byte header")
        return
    end
    local flags = range(0, 1):uint()
    local inner = flags % 16
    local seq, index, count = range(1, 1):uint(), range(2, 1):uint(), range(3, 1):uint()
    local ft = item:add(f.frag_flags, range(0, 1))
    ft:add(f.frag_ackreq, range(0, 1))
    ft:add(f.frag_first, range(0, 1))
    local rsv = ft:add(f.frag_reserved, range(0, 1))
    ft:add(f.frag_inner, range(0, 1))
    item:add(f.frag_seq, range(1, 1))
    item:add(f.frag_index, range(2, 1))
    item:add(f.frag_count, range(3, 1))
    local body = range:len() > 4 and range(4) or nil
    if body then item:add(f.frag_data, body) end
    local marks = ""
    if band(flags, 0x40) ~= 0 then marks = marks .. " First" end
    if band(flags, 0x80) ~= 0 then marks = marks .. " AckReq" end
    info(string.format("Fragment seq %d %d/%d%s", seq, index + 1, count, marks))
    if band(flags, 0x30) ~= 0 then
        malformed(rsv, pinfo, "reserved flag bits set")
        return
    end
    if count < 1 or count > MAX_FRAGMENTS or index >= count then
        malformed(item, pinfo, string.format("index %d, count %d: count must be 1..%d and index below it",
            index, count, MAX_FRAGMENTS))
        return
    end
    local res
    if pinfo.visited then
        res = results[pinfo.number] or {}
    else
        res = fragment_arrived(pinfo.number, src, dst, seq, index, count, inner, band(flags, 0x40) ~= 0,
            body and body:raw() or "")
        results[pinfo.number] = res
    end
    if res.dup then
        local d = item:add(f.frag_dup, res.dup)
        d:set_generated()
        d:add_proto_expert_info(e.duplicate, "retransmission of the fragment in frame " .. res.dup)
        mark("retransmission")
    end
    if res.reasm_in and not res.reasm then
        item:add(f.frag_in, res.reasm_in):set_generated()
    end
    if res.reasm then
        local rt = item:add(slided, range, string.format("%d fragments, %d bytes", count, #res.reasm))
        rt:set_generated()
        for i = 0, count - 1 do
            rt:add(f.fragment, res.frames[i]):set_generated()
        end
        rt:add(f.reasm_len, #res.reasm):set_generated()
        rt:add_proto_expert_info(e.reassembled, string.format("seq %d reassembled from %d fragments", seq, count))
        local whole = ByteArray.new(res.reasm, true):tvb("Reassembled packet")
        dissect_packet(res.inner, dst, src, whole(), pinfo, tree, rt)
    end
end

-- dissect_ack_record shows one record of an Ack (seq, count, bitmap) at
-- the start of range and returns its length, or nil if it is malformed.
-- In version 2 the first record's count may carry the More flag (0x80:
-- data follows this Ack), and an Ack may hold several records back to back.
local function dissect_ack_record(dst, src, range, pinfo, item, first)
    if range:len() < 3 then
        malformed(item, pinfo, "ack record shorter than 3 bytes")
        return nil
    end
    local seq, count = range(0, 1):uint(), range(1, 1):uint()
    local more = false
    if first and cur_version >= 2 and band(count, ACK_MORE) ~= 0 then
        count, more = count - ACK_MORE, true
    end
    item:add(f.ack_seq, range(0, 1))
    local ct = item:add(f.ack_count, range(1, 1), count)
    if more then
        item:add(f.ack_more, true):set_generated()
    end
    if count < 1 or count > MAX_FRAGMENTS then
        info(string.format("Ack seq %d", seq))
        malformed(ct, pinfo, string.format("count %d outside 1..%d", count, MAX_FRAGMENTS))
        return nil
    end
    local want = 2 + math.floor((count + 7) / 8)
    if range:len() < want or (cur_version < 2 and range:len() ~= want) then
        info(string.format("Ack seq %d", seq))
        malformed(item, pinfo, string.format("ack of %d fragments is %d bytes, not %d", count, range:len(), want))
        return nil
    end
    local bm = range(2, want - 2)
    local bt = item:add(f.ack_bitmap, bm)
    local held, missing, beyond = 0, {}, false
    for i = 0, 8 * bm:len() - 1 do
        local byte = bm(math.floor(i / 8), 1):uint()
        local set = band(byte, 2 ^ (i % 8)) ~= 0
        if i < count then
            if set then held = held + 1 else missing[#missing + 1] = i end
        elseif set then
            beyond = true
        end
    end
    item:add(f.ack_held, held):set_generated()
    for _, m in ipairs(missing) do
        item:add(f.ack_missing, m):set_generated()
    end
    item:add(f.ack_complete, held == count):set_generated()
    if beyond then
        info(string.format("Ack seq %d", seq))
        malformed(bt, pinfo, "bitmap bits set beyond count")
        return nil
    end
    -- The Ack from src to dst answers the packet from dst to src.
    local res
    if pinfo.visited then
        res = (results[pinfo.number] or {})[seq] or {}
    else
        local b = buffers[dst .. ":" .. src .. ":" .. seq]
        res = { packet_in = b and b.done }
        results[pinfo.number] = results[pinfo.number] or {}
        results[pinfo.number][seq] = res
    end
    if res.packet_in then
        item:add(f.ack_packet, res.packet_in):set_generated()
    end
    if held == count then
        info(string.format("Ack seq %d: all %d fragments", seq, count))
    else
        local ms = {}
        for _, m in ipairs(missing) do ms[#ms + 1] = tostring(m) end
        info(string.format("Ack seq %d: %d of %d fragments, missing %s", seq, held, count, table.concat(ms, ",")))
    end
    return want
end

-- dissect_ack shows an Ack: exactly one record in version 1; in version 2
-- one or more (at most MAX_ACK_RECORDS), each a subtree of its own.
local function dissect_ack(dst, src, range, pinfo, item)
    if cur_version < 2 then
        dissect_ack_record(dst, src, range, pinfo, item, true)
        return
    end
    if range:len() > ACKS_MAX_LEN then
        malformed(item, pinfo, string.format("ack of %d bytes, over %d", range:len(), ACKS_MAX_LEN))
        return
    end
    local off, n = 0, 0
    while off < range:len() do
        n = n + 1
        if n > MAX_ACK_RECORDS then
            malformed(item, pinfo, string.format("ack of more than %d records", MAX_ACK_RECORDS))
            return
        end
        local rt = item:add(f.ack_record, range(off))
        local len = dissect_ack_record(dst, src, range(off), pinfo, rt, n == 1)
        if not len then return end
        rt:set_len(len)
        off = off + len
    end
end

local function dissect_sealed(dst, src, range, pinfo, tree, item)
    if range:len() < SEAL_COUNTER + 1 + SEAL_TAG then
        malformed(item, pinfo, string.format("sealed payload of %d bytes, under the envelope's %d",
            range:len(), SEAL_COUNTER + 1 + SEAL_TAG))
        return
    end
    local counter = range(0, SEAL_COUNTER):uint64()
    item:add(f.sealed_counter, range(0, SEAL_COUNTER), counter)
    item:add(f.sealed_ct, range(SEAL_COUNTER, range:len() - SEAL_COUNTER - SEAL_TAG))
    item:add(f.sealed_tag, range(range:len() - SEAL_TAG, SEAL_TAG))
    info(string.format("Sealed #%s", tostring(counter)))
    load_key()
    if not keys then
        item:add(f.sealed_opened, false):set_generated()
        if key_err then
            item:add_proto_expert_info(e.bad_key, key_err)
        else
            item:add_proto_expert_info(e.no_key)
        end
        return
    end
    local hdr = string.char(cur_version * 16 + KIND_SEALED, dst, src)
    local plain
    for _, key in ipairs(keys) do
        plain = open_envelope(key, hdr, src, range:raw())
        if plain then break end
    end
    if not plain then
        item:add(f.sealed_opened, false):set_generated()
        item:add_proto_expert_info(e.forged)
        mark("authentication failed")
        return
    end
    item:add(f.sealed_opened, true):set_generated()
    local inner = band(plain:byte(1), 0x0F)
    local ptvb = ByteArray.new(plain, true):tvb("Opened frame")
    item:add(f.sealed_inner, ptvb(0, 1), inner)
    local it = item:add(slided, ptvb(), string.format("Opened: %s", kind_name(inner)))
    if inner == KIND_SEALED then
        malformed(it, pinfo, "sealed frame inside a sealed frame")
        return
    end
    dissect_body(inner, dst, src, ptvb(1), pinfo, tree, it)
end

-- dissect_signed shows a signed frame: counter, inner kind, the inner
-- payload (in clear, dissected as its kind), the tag, verified when the key
-- is known.
local function dissect_signed(dst, src, range, pinfo, tree, item)
    if range:len() < SEAL_COUNTER + 1 + SEAL_TAG then
        malformed(item, pinfo, string.format("signed payload of %d bytes, under the envelope's %d",
            range:len(), SEAL_COUNTER + 1 + SEAL_TAG))
        return
    end
    local counter = range(0, SEAL_COUNTER):uint64()
    item:add(f.signed_counter, range(0, SEAL_COUNTER), counter)
    local inner = band(range(SEAL_COUNTER, 1):uint(), 0x0F)
    item:add(f.signed_inner, range(SEAL_COUNTER, 1), inner)
    item:add(f.signed_tag, range(range:len() - SEAL_TAG, SEAL_TAG))
    info(string.format("Signed #%s", tostring(counter)))
    load_key()
    if keys then
        local hdr = string.char(cur_version * 16 + KIND_SIGNED, dst, src)
        local ok = false
        for _, key in ipairs(keys) do
            if signed_ok(key, hdr, src, range:raw()) then ok = true break end
        end
        item:add(f.signed_verified, ok):set_generated()
        if not ok then
            item:add_proto_expert_info(e.forged)
            mark("authentication failed")
        end
    elseif key_err then
        item:add_proto_expert_info(e.bad_key, key_err)
    end
    if inner == KIND_SEALED or inner == KIND_SIGNED then
        malformed(item, pinfo, "envelope inside an envelope")
        return
    end
    local body = range(SEAL_COUNTER + 1, range:len() - SEAL_COUNTER - 1 - SEAL_TAG)
    local it = item:add(slided, body, string.format("Signed payload: %s", kind_name(inner)))
    dissect_body(inner, dst, src, body, pinfo, tree, it)
end

-- dissect_body shows a payload (a TvbRange, possibly empty) of kind.
dissect_body = function(kind, dst, src, range, pinfo, tree, item)
    if kind == KIND_DATA or kind == KIND_ETHERNET or kind == KIND_IPHC then
        info(kind_name(kind))
        dissect_packet(kind, dst, src, range, pinfo, tree, item)
    elseif kind == KIND_HELLO then
        if range:len() < 1 then
            info("Hello")
            malformed(item, pinfo, "hello without its version byte")
            return
        end
        item:add(f.hello_version, range(0, 1))
        info(string.format("Hello v%d", range(0, 1):uint()))
    elseif kind == KIND_FRAGMENT then
        dissect_fragment(dst, src, range, pinfo, tree, item)
    elseif kind == KIND_ACK then
        dissect_ack(dst, src, range, pinfo, item)
    elseif kind == KIND_SEALED then
        dissect_sealed(dst, src, range, pinfo, tree, item)
    elseif kind == KIND_SIGNED then
        dissect_signed(dst, src, range, pinfo, tree, item)
    else
        info(kind_name(kind))
        item:add_proto_expert_info(e.reserved, kind_name(kind) .. ": not sent by this version of slided")
        if range:len() > 0 then call_data(range:tvb(), pinfo, tree) end
    end
end

-- dissect_frame dissects one record and returns the Info column's route
-- ("node 1 -> node 2"), or nil when the header is cut short.
local function dissect_frame(tvb, pinfo, tree)
    pinfo.cols.protocol = "slided"
    local t = tree:add(slided, tvb())
    if tvb:len() < 3 then
        t:set_text("slided, header cut short")
        info("slided frame shorter than its 3-byte header")
        malformed(t, pinfo, "frame shorter than its 3-byte header")
        return nil
    end
    local vk = tvb(0, 1):uint()
    local version, kind = math.floor(vk / 16), vk % 16
    local dst, src = tvb(1, 1):uint(), tvb(2, 1):uint()
    t:set_text(string.format("slided %s, %s -> %s", kind_name(kind), node_name(src), node_name(dst)))
    local vi = t:add(f.version, tvb(0, 1))
    t:add(f.kind, tvb(0, 1))
    local di = t:add(f.dst, tvb(1, 1))
    local si = t:add(f.src, tvb(2, 1))
    pinfo.cols.src = node_name(src)
    pinfo.cols.dst = node_name(dst)
    local route = string.format("%s -> %s", node_name(src), node_name(dst))
    pinfo.cols.info = route
    cur_version = version
    if version < 1 or version > MAX_VERSION then
        malformed(vi, pinfo, "version " .. version .. ", not 1 to " .. MAX_VERSION)
    elseif dst == 0 then
        malformed(di, pinfo, "destination 0 is invalid")
    elseif src == 0 or src == 0xFF then
        malformed(si, pinfo, "source " .. src .. " is invalid")
    elseif tvb:len() < tvb:reported_length_remaining() then
        t:add_proto_expert_info(e.truncated)
        mark("cut by the snap length")
    else
        dissect_body(kind, dst, src, tvb(3, tvb:len() - 3), pinfo, tree, t)
    end
    return route
end

function slided.dissector(tvb, pinfo, tree)
    cur_what, cur_marks = {}, {}
    local route = dissect_frame(tvb, pinfo, tree)
    local summary = table.concat(cur_what, ", ")
    local marks = table.concat(cur_marks, " ")
    if route == nil or tostring(pinfo.cols.info) == route then
        local parts = {}
        for _, p in ipairs({ route or "", summary, marks }) do
            if p ~= "" then parts[#parts + 1] = p end
        end
        pinfo.cols.info = table.concat(parts, " ")
    else
        -- The Ethernet/IP dissectors of a whole packet wrote their own
        -- Info; the link's summary goes in front of it.
        if summary ~= "" then pinfo.cols.info:prepend(summary .. ": ") end
        if marks ~= "" then pinfo.cols.info:append(" " .. marks) end
    end
    return tvb:len()
end

DissectorTable.get("wtap_encap"):add(wtap.USER0, slided)
