defmodule ObjectStoreX.SyncListingTest do
  # ObjectStoreX.Sync's listings on their own: each side listed in a process of its own ahead
  # of the merge (Listing.merge_ahead/2), bounded, torn down with its consumer; and the :tree
  # walk. A side on its own is merged with an empty one, `ahead/1` below.
  use ExUnit.Case, async: true

  import ObjectStoreX.SyncHelpers
  import ObjectStoreX.TestHelpers, only: [drain_mailbox: 1]

  alias ObjectStoreX.{Error, Fault, TestBackends, TestHelpers}
  alias ObjectStoreX.Sync.Listing

  describe "a listing ahead of its consumer" do
    test "yields the listing itself, in order" do
      store = TestBackends.store!(:memory)
      tree = tree(2_500)
      populate!(store, "p", tree)

      keys = store |> Listing.chunks("p", "source") |> ahead() |> keys()
      assert keys == tree |> Enum.map(&elem(&1, 0)) |> Enum.sort()
      assert_clean()
    end

    test "runs at most three chunks of 1,000 entries ahead, and waits" do
      produced = :counters.new(1, [])

      endless =
        Stream.iterate(0, &(&1 + 1))
        |> Stream.map(fn i ->
          :counters.add(produced, 1, 1)
          {String.pad_leading("#{i}", 12, "0"), nil}
        end)
        |> Stream.chunk_every(1_000)

      {first, cont} = first(ahead(endless))
      assert {"000000000000", nil} = first
      # The empty side's listing has ended and unlinked itself.
      assert TestHelpers.wait_until(fn -> length(linked()) == 1 end)
      [lister] = linked()

      # Blocked, waiting to be asked for more: the chunk taken from, one sent, one filled.
      assert TestHelpers.wait_until(fn ->
               Process.info(lister, :current_function) ==
                 {:current_function, {Listing, :await_more, 1}}
             end)

      assert :counters.get(produced, 1) == 3_000

      cont.({:halt, nil})
      refute Process.alive?(lister)
      assert_clean()
    end

    test "a consumer that stops early ends the listing process and keeps no message of it" do
      store = TestBackends.store!(:memory)
      populate!(store, nil, tree(3_000))

      {_first, cont} = first(ahead(Listing.chunks(store, nil, "source")))
      assert TestHelpers.wait_until(fn -> length(linked()) == 1 end)
      [lister] = linked()
      cont.({:halt, nil})

      refute Process.alive?(lister)
      assert_clean()

      # Enum.take halts the stream the same way.
      assert [_, _] = store |> Listing.chunks(nil, "source") |> ahead() |> take(2)
      assert_clean()
    end

    test "an error of the listing is raised in the consumer, after what came before it" do
      failing =
        Stream.concat(
          Enum.map(1..1_500, &{String.pad_leading("#{&1}", 5, "0"), nil}),
          Stream.map([:boom], fn _ -> raise Error, reason: :network_error, message: "page 2" end)
        )
        |> Stream.chunk_every(1_000)

      parent = self()

      assert {:listing_failed, :source, %Error{message: "page 2"}} =
               catch_throw(
                 failing
                 |> ahead()
                 |> Stream.each(fn {key, _} -> send(parent, {:seen, key}) end)
                 |> Stream.run()
               )

      seen = for {:seen, key} <- drain_mailbox(0), do: key
      assert length(seen) == 1_000
      assert_clean()

      # Anything else the listing raises reaches the consumer as it was raised.
      assert_raise ArgumentError, fn ->
        Stream.map([1], fn _ -> raise ArgumentError end)
        |> ahead()
        |> Stream.run()
      end

      assert_clean()
    end

    test "a listing process that goes down is an error, never the listing's end" do
      parent = self()

      blocked =
        Stream.map([1, 2], fn
          1 ->
            [{"a", nil}]

          2 ->
            send(parent, {:listing, self()})
            Process.sleep(:infinity)
        end)

      # A consumer that traps exits survives the listing's death, and must not take it for the
      # end of the listing.
      consumer =
        Task.async(fn ->
          Process.flag(:trap_exit, true)

          try do
            {:ok, blocked |> ahead() |> Enum.to_list()}
          catch
            {:listing_failed, :source, %Error{} = e} -> {:error, e}
          end
        end)

      assert_receive {:listing, lister}, 10_000
      Process.exit(lister, :kill)

      assert {:error, %Error{reason: :internal, message: message}} = Task.await(consumer)
      assert message =~ "the source listing stopped before its end"
    end
  end

  describe ":tree" do
    test "lists the same keys as :flat, in order" do
      store = TestBackends.store!(:memory)
      # Many sibling directories, nested ones, and keys between a directory and its contents.
      tree =
        tree(300) ++
          for(d <- 1..40, i <- 1..3, do: {"many/d#{d}/k#{i}", "#{d}-#{i}"}) ++
          [{"many/d1-x", "x"}, {"many/d1/sub/deep", "deep"}]

      populate!(store, "p", tree)

      flat = store |> Listing.chunks("p", "source", :flat) |> Enum.concat() |> keys()
      assert store |> Listing.chunks("p", "source", :tree) |> Enum.concat() |> keys() == flat
      assert flat == tree |> Enum.map(&elem(&1, 0)) |> Enum.sort()
      assert_clean()
    end

    test "lists the next 8 directories while the walk is still before them, no more" do
      store = TestBackends.store!(:memory)
      populate!(store, nil, for(d <- 1..20, i <- 1..3, do: {"many/d#{pad(d)}/k#{i}", "v"}))
      faulty = Fault.wrap!(store, [])

      {[{"many/d01/k1", _} | _], cont} = first(Listing.chunks(faulty, nil, "source", :tree))
      listed = for d <- 1..9, do: "many/d#{pad(d)}"

      # d01 is being emitted: d02..d09 were asked for too, and nothing past them.
      assert TestHelpers.wait_until(fn -> length(lists(faulty)) == 2 + length(listed) end)
      assert Enum.sort(lists(faulty)) == Enum.sort(["", "many" | listed])

      cont.({:halt, nil})
      assert_clean()
    end

    test "a directory listed ahead that fails raises once the walk reaches it" do
      store = TestBackends.store!(:memory)
      populate!(store, nil, for(d <- 1..6, i <- 1..3, do: {"d#{d}/k#{i}", "v"}))
      faulty = Fault.wrap!(store, fail: [op: :list, path: "d4", reason: :network_error])
      parent = self()

      assert_raise Error, fn ->
        faulty
        |> Listing.chunks(nil, "source", :tree)
        |> Stream.flat_map(& &1)
        |> Stream.each(fn {key, _} -> send(parent, {:seen, key}) end)
        |> Stream.run()
      end

      assert for({:seen, key} <- drain_mailbox(0), do: key) ==
               for(d <- 1..3, i <- 1..3, do: "d#{d}/k#{i}")

      assert_clean()
    end
  end

  describe "chunks and the merge of two listings ahead" do
    test "chunks/4 hands a listing over in lists of at most 1,000 entries, either mode" do
      store = TestBackends.store!(:memory)
      # One directory of 2,500 objects and a few beside it.
      populate!(store, "p", for(i <- 1..2_500, do: {"big/k#{pad4(i)}", "v"}) ++ tree(30))

      for mode <- [:flat, :tree] do
        chunks = store |> Listing.chunks("p", "source", mode) |> Enum.to_list()
        assert Enum.all?(chunks, &(length(&1) in 1..1_000))

        assert chunks |> Enum.concat() |> keys() ==
                 store |> Listing.chunks("p", "source") |> Enum.concat() |> keys()
      end

      assert_clean()
    end

    test "merge_ahead/2 merges in key order, as lists" do
      src = TestBackends.store!(:memory)
      dst = TestBackends.store!(:memory)
      both = for i <- 1..1_500, do: {"k#{pad4(i)}", "v"}
      populate!(src, nil, both ++ for(i <- 1..700, do: {"s#{pad4(i)}", "v"}))
      populate!(dst, nil, both ++ for(i <- 1..1_200, do: {"d#{pad4(i)}", "v"}))

      merged =
        Listing.chunks(src, nil, "source")
        |> Listing.merge_ahead(Listing.chunks(dst, nil, "destination"))
        |> Enum.to_list()

      assert Enum.all?(merged, &is_list/1)
      items = Enum.concat(merged)
      keys = Enum.map(items, &elem(&1, 1))
      assert keys == Enum.sort(keys)
      assert length(for({:both, _, %{}, %{}} <- items, do: 1)) == 1_500
      assert for({:source, k, _} <- items, do: k) == for(i <- 1..700, do: "s#{pad4(i)}")
      assert for({:dest, k, _} <- items, do: k) == for(i <- 1..1_200, do: "d#{pad4(i)}")
      assert_clean()
    end

    test "a listing that fails is thrown with its side, and both listings end" do
      src = TestBackends.store!(:memory)
      populate!(src, nil, tree(50))
      dst = Fault.wrap!(src, fail: [op: :list, reason: :network_error])

      assert {:listing_failed, :dest, %Error{reason: :network_error}} =
               catch_throw(
                 Listing.chunks(src, nil, "source")
                 |> Listing.merge_ahead(Listing.chunks(dst, nil, "destination", :tree))
                 |> Stream.run()
               )

      assert_clean()
    end
  end

  defp pad(n), do: String.pad_leading("#{n}", 2, "0")
  defp pad4(n), do: String.pad_leading("#{n}", 4, "0")

  defp lists(store), do: for(%{op: :list, path: path} <- Fault.calls!(store), do: path)

  defp keys(stream), do: Enum.map(stream, &elem(&1, 0))

  # One listing (of chunks) through the merge, against an empty one, as `{key, meta}`.
  defp ahead(chunks) do
    chunks
    |> Listing.merge_ahead([])
    |> Stream.flat_map(fn merged -> for {:source, key, meta} <- merged, do: {key, meta} end)
  end

  defp take(stream, n), do: Enum.take(stream, n)

  # The first element, and the suspended rest of the enumeration.
  defp first(stream) do
    {:suspended, nil, cont} =
      Enumerable.reduce(stream, {:suspend, nil}, fn x, _ -> {:suspend, x} end)

    {:suspended, x, cont} = cont.({:cont, nil})
    {x, cont}
  end

  defp linked do
    {:links, links} = Process.info(self(), :links)
    links
  end

  # No listing process is left linked to or monitored by the test, and none sent it anything.
  defp assert_clean do
    assert linked() == []
    assert Process.info(self(), :monitors) == {:monitors, []}
    assert Process.info(self(), :messages) == {:messages, []}
  end
end
