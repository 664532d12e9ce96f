-- Wireshark dissector for slided captures (slided run -pcap FILE).
--
-- A slided capture is a classic pcap file with link type LINKTYPE_USER0
-- (147). Each record is one link frame as decoded on air (docs/frame-format.md),
-- COBS and CRC-32C removed:
--
--   byte 0   version (high nibble, 1) | kind (low nibble)
--   byte 1   destination node id (0xFF broadcast)
--   byte 2   source node id
--   3..      payload: kind 0 = EtherType (2 bytes) + Ethernet payload,
--                     kind 1 = a whole Ethernet frame (no FCS)
--
-- Install: copy to ~/.local/lib/wireshark/plugins/ (Wireshark 3.6+, or
-- ~/.config/wireshark/plugins/ for older versions), or run
--   wireshark -X lua_script:slided.lua air.pcap
--   tshark    -X lua_script:slided.lua -r air.pcap

local slided = Proto("slided", "slided link frame")

local kinds = { [0] = "data", [1] = "ethernet" }

local f_version = ProtoField.uint8("slided.version", "Version", base.DEC, nil, 0xF0)
local f_kind    = ProtoField.uint8("slided.kind", "Kind", base.DEC, kinds, 0x0F)
local f_dst     = ProtoField.uint8("slided.dst", "Destination node", base.DEC)
local f_src     = ProtoField.uint8("slided.src", "Source node", base.DEC)
local f_etype   = ProtoField.uint16("slided.ethertype", "EtherType", base.HEX)
slided.fields = { f_version, f_kind, f_dst, f_src, f_etype }

local ethertype_table = DissectorTable.get("ethertype")
local eth_dissector = Dissector.get("eth_withoutfcs")
local data_dissector = Dissector.get("data")

local function node_name(id)
    if id == 0xFF then
        return "broadcast"
    end
    return "node " .. id
end

function slided.dissector(tvb, pinfo, tree)
    if tvb:len() < 3 then
        return 0
    end
    pinfo.cols.protocol = "slided"
    local vk = tvb(0, 1):uint()
    local kind = bit.band(vk, 0x0F)
    local dst = tvb(1, 1):uint()
    local src = tvb(2, 1):uint()

    local t = tree:add(slided, tvb(0, 3), string.format("slided %s, %s -> %s",
        kinds[kind] or ("kind " .. kind), node_name(src), node_name(dst)))
    t:add(f_version, tvb(0, 1))
    t:add(f_kind, tvb(0, 1))
    t:add(f_dst, tvb(1, 1))
    t:add(f_src, tvb(2, 1))
    pinfo.cols.src = node_name(src)
    pinfo.cols.dst = node_name(dst)
    pinfo.cols.info = string.format("%s %s -> %s", kinds[kind] or ("kind " .. kind),
        node_name(src), node_name(dst))

    if kind == 0 and tvb:len() >= 5 then
        local etype = tvb(3, 2):uint()
        t:add(f_etype, tvb(3, 2))
        local rest = tvb(5):tvb()
        if not ethertype_table:try(etype, rest, pinfo, tree) then
            data_dissector:call(rest, pinfo, tree)
        end
    elseif kind == 1 and tvb:len() > 3 then
        eth_dissector:call(tvb(3):tvb(), pinfo, tree)
    elseif tvb:len() > 3 then
        data_dissector:call(tvb(3):tvb(), pinfo, tree)
    end
    return tvb:len()
end

DissectorTable.get("wtap_encap"):add(wtap.USER0, slided)
