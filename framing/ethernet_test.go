package framing

import (
	"bytes"
	"errors"
	"testing"
)

func mac(t testing.TB, s string) []byte { return unhex(t, s) }

func TestMACFor(t *testing.T) {
	if got := MACFor(1).String(); got != "02:53:4c:44:00:01" {
		t.Errorf("MACFor(1) = %s", got)
	}
	if got := MACFor(0xFE).String(); got != "02:53:4c:44:00:fe" {
		t.Errorf("MACFor(0xFE) = %s", got)
	}
	if MACFor(5)[0]&0x03 != 0x02 {
		t.Errorf("not a locally administered unicast MAC: %s", MACFor(5))
	}
}

func TestNodeOf(t *testing.T) {
	tests := []struct {
		desc string
		mac  string
		id   NodeID
		ok   bool
	}{
		{"node 1", "02534c440001", 1, true},
		{"node 254", "02534c4400fe", 254, true},
		{"id 0x00 is reserved", "02534c440000", 0, false},
		{"id 0xff is not a node", "02534c4400ff", 0, false},
		{"wrong fifth byte", "02534c440101", 0, false},
		{"wrong first byte", "03534c440001", 0, false},
		{"broadcast", "ffffffffffff", 0, false},
		{"5 bytes", "02534c4400", 0, false},
		{"7 bytes", "02534c44000100", 0, false},
		{"empty", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			id, ok := NodeOf(mac(t, tt.mac))
			if id != tt.id || ok != tt.ok {
				t.Errorf("NodeOf(%s) = %d, %v; want %d, %v", tt.mac, id, ok, tt.id, tt.ok)
			}
		})
	}
}

func TestCompact(t *testing.T) {
	const self = NodeID(1)
	selfMAC := "02534c440001"
	foreign := "aabbccddeeff"
	tests := []struct {
		desc    string
		eth     string
		h       Header
		payload string // "" with err set; "eth" for the whole frame
		err     error
	}{
		{"broadcast ARP from self", "ffffffffffff" + selfMAC + "0806" + "0001080006040001",
			Header{Kind: KindData, Dst: Broadcast, Src: self}, "0806" + "0001080006040001", nil},
		{"unicast IPv4 to node 7", "02534c440007" + selfMAC + "0800" + "4500001c",
			Header{Kind: KindData, Dst: 7, Src: self}, "0800" + "4500001c", nil},
		{"unicast IPv6 to node 254", "02534c4400fe" + selfMAC + "86dd" + "60000000",
			Header{Kind: KindData, Dst: 254, Src: self}, "86dd" + "60000000", nil},
		{"header only, 14 bytes", "02534c440002" + selfMAC + "88b5",
			Header{Kind: KindData, Dst: 2, Src: self}, "88b5", nil},
		{"VLAN-tagged keeps its tag in the payload", "02534c440002" + selfMAC + "8100000a0800" + "45",
			Header{Kind: KindData, Dst: 2, Src: self}, "8100000a0800" + "45", nil},
		{"to self's own MAC", "02534c440001" + selfMAC + "0800",
			Header{Kind: KindData, Dst: self, Src: self}, "0800", nil},
		{"IPv4 multicast", "01005e0000fb" + selfMAC + "0800" + "45000020",
			Header{Kind: KindEthernet, Dst: Broadcast, Src: self}, "eth", nil},
		{"IPv6 all-nodes multicast", "333300000001" + selfMAC + "86dd" + "60000000",
			Header{Kind: KindEthernet, Dst: Broadcast, Src: self}, "eth", nil},
		{"IPv6 solicited-node multicast", "3333ff000002" + selfMAC + "86dd" + "60000000",
			Header{Kind: KindEthernet, Dst: Broadcast, Src: self}, "eth", nil},
		{"broadcast from a foreign MAC", "ffffffffffff" + foreign + "0806" + "0001",
			Header{Kind: KindEthernet, Dst: Broadcast, Src: self}, "eth", nil},
		{"to node 7 from a foreign MAC", "02534c440007" + foreign + "0800" + "45",
			Header{Kind: KindEthernet, Dst: 7, Src: self}, "eth", nil},
		{"to node 7 from another node's MAC", "02534c440007" + "02534c440002" + "0800",
			Header{Kind: KindEthernet, Dst: 7, Src: self}, "eth", nil},
		{"unicast to a foreign MAC", foreign + selfMAC + "0800" + "45", Header{}, "", ErrNoRoute},
		{"unicast to reserved id 0x00", "02534c440000" + selfMAC + "0800", Header{}, "", ErrNoRoute},
		{"unicast to id 0xff", "02534c4400ff" + selfMAC + "0800", Header{}, "", ErrNoRoute},
		{"13 bytes", "ffffffffffff" + selfMAC + "08", Header{}, "", ErrShort},
		{"empty", "", Header{}, "", ErrShort},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			eth := mac(t, tt.eth)
			h, p, err := Compact(eth, self)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			want := eth
			if tt.payload != "eth" {
				want = mac(t, tt.payload)
			}
			if h != tt.h || !bytes.Equal(p, want) {
				t.Fatalf("got %+v % x\nwant %+v % x", h, p, tt.h, want)
			}
			if len(p) > 0 && &p[0] != &eth[len(eth)-len(p)] {
				t.Errorf("payload does not alias eth")
			}
			back, err := AppendEthernet([]byte{0xEE}, h, p)
			if err != nil || back[0] != 0xEE || !bytes.Equal(back[1:], eth) {
				t.Errorf("AppendEthernet: % x, %v; want ee % x", back, err, eth)
			}
		})
	}
}

func TestCompactBadSelf(t *testing.T) {
	eth := mac(t, "ffffffffffff02534c4400010806")
	for _, self := range []NodeID{0, Broadcast} {
		if _, _, err := Compact(eth, self); !errors.Is(err, ErrBadAddr) {
			t.Errorf("self %d: err %v, want ErrBadAddr", self, err)
		}
	}
}

func TestAppendEthernetErrors(t *testing.T) {
	tests := []struct {
		desc    string
		h       Header
		payload []byte
		err     error
	}{
		{"reserved kind 2", Header{Kind: 2, Dst: 1, Src: 2}, make([]byte, 20), ErrBadKind},
		{"reserved kind 15", Header{Kind: 15, Dst: 1, Src: 2}, make([]byte, 20), ErrBadKind},
		{"data without ethertype", Header{Kind: KindData, Dst: 1, Src: 2}, []byte{8}, ErrShort},
		{"ethernet under 14 bytes", Header{Kind: KindEthernet, Dst: 1, Src: 2}, make([]byte, 13), ErrShort},
		{"data to 0x00", Header{Kind: KindData, Dst: 0, Src: 2}, []byte{8, 0}, ErrBadAddr},
		{"data from 0x00", Header{Kind: KindData, Dst: 1, Src: 0}, []byte{8, 0}, ErrBadAddr},
		{"data from broadcast", Header{Kind: KindData, Dst: 1, Src: Broadcast}, []byte{8, 0}, ErrBadAddr},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			dst := []byte{1, 2, 3}
			got, err := AppendEthernet(dst, tt.h, tt.payload)
			if !errors.Is(err, tt.err) {
				t.Errorf("err %v, want %v", err, tt.err)
			}
			if !bytes.Equal(got, []byte{1, 2, 3}) {
				t.Errorf("dst changed on error: % x", got)
			}
		})
	}
}

func TestAppendEthernetData(t *testing.T) {
	got, err := AppendEthernet(nil, Header{Kind: KindData, Dst: Broadcast, Src: 9}, []byte{0x08, 0x06, 0xAA})
	want := mac(t, "ffffffffffff"+"02534c440009"+"0806aa")
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("got % x, %v; want % x", got, err, want)
	}
}
