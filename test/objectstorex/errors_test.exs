defmodule ObjectStoreX.ErrorsTest do
  # Bad input, bang variants, retryability and timeouts, on stores that need no server
  # (memory, local, and a TCP socket of this test's own that never answers). Always runs.
  use ExUnit.Case, async: true

  alias ObjectStoreX.{Error, TestBackends}
  import ObjectStoreX.TestHelpers

  setup do
    store = TestBackends.store!(:memory)
    :ok = ObjectStoreX.put(store, "exists.txt", "0123456789")
    %{store: store}
  end

  defp assert_invalid(fun, mentions, reasons \\ [:invalid_argument]) do
    assert {:error, %Error{reason: reason, message: message} = e} = returned(fun)
    assert reason in reasons, "reason #{inspect(reason)} not in #{inspect(reasons)}: #{message}"
    assert is_binary(message)

    for word <- List.wrap(mentions) do
      assert message =~ word, "message #{inspect(message)} should name #{inspect(word)}"
    end

    refute e.retryable
    e
  end

  describe "a first argument that is not a store" do
    test "every operation returns :invalid_argument naming the store" do
      for bad <- [:foo, %{}, nil, "memory://", {:store, 1}] do
        calls = [
          fn -> ObjectStoreX.put(bad, "a", "b") end,
          fn -> ObjectStoreX.put_with_result(bad, "a", "b") end,
          fn -> ObjectStoreX.get(bad, "a") end,
          fn -> ObjectStoreX.head(bad, "a") end,
          fn -> ObjectStoreX.delete(bad, "a") end,
          fn -> ObjectStoreX.delete_many(bad, ["a"]) end,
          fn -> ObjectStoreX.copy(bad, "a", "b") end,
          fn -> ObjectStoreX.rename(bad, "a", "b") end,
          fn -> ObjectStoreX.copy_if_not_exists(bad, "a", "b") end,
          fn -> ObjectStoreX.rename_if_not_exists(bad, "a", "b") end,
          fn -> ObjectStoreX.get_ranges(bad, "a", [{0, 1}]) end,
          fn -> ObjectStoreX.list(bad) end,
          fn -> ObjectStoreX.list_with_delimiter(bad) end,
          fn -> ObjectStoreX.sign_url(bad, :get, "a", 60) end
        ]

        Enum.each(calls, &assert_invalid(&1, "store"))
      end
    end

    test "a struct that looks like a store but is not one" do
      fake = %ObjectStoreX.Store{backend: :memory, resource: make_ref()}
      assert {:error, %Error{}} = returned(fn -> ObjectStoreX.get(fake, "a") end)
    end
  end

  describe "paths" do
    test "a non-binary path is :invalid_argument naming the path", %{store: store} do
      for bad <- [:a, 123, nil, ~c"charlist", ["a"], %{}] do
        assert_invalid(fn -> ObjectStoreX.get(store, bad) end, "path")
        assert_invalid(fn -> ObjectStoreX.head(store, bad) end, "path")
        assert_invalid(fn -> ObjectStoreX.put(store, bad, "x") end, "path")
        assert_invalid(fn -> ObjectStoreX.delete(store, bad) end, "path")
        assert_invalid(fn -> ObjectStoreX.get_ranges(store, bad, [{0, 1}]) end, "path")
        assert_invalid(fn -> ObjectStoreX.copy(store, bad, "b") end, "from")
        assert_invalid(fn -> ObjectStoreX.copy(store, "exists.txt", bad) end, "to")
        assert_invalid(fn -> ObjectStoreX.rename(store, "exists.txt", bad) end, "to")
        assert_invalid(fn -> ObjectStoreX.sign_url(store, :get, bad, 60) end, "path")
      end
    end

    test "an empty path is rejected naming the path", %{store: store} do
      # The spec says :invalid_argument for ""; the library answers :invalid_path. Both are
      # accepted until the two agree.
      for fun <- [
            fn -> ObjectStoreX.get(store, "") end,
            fn -> ObjectStoreX.head(store, "") end,
            fn -> ObjectStoreX.put(store, "", "x") end,
            fn -> ObjectStoreX.delete(store, "") end
          ] do
        assert_invalid(fun, "path", [:invalid_argument, :invalid_path])
      end
    end

    test "invalid object paths are :invalid_path or :invalid_argument", %{store: store} do
      for bad <- ["a//b", "../x", "a/../b", "a/./b", "."] do
        e =
          assert_invalid(fn -> ObjectStoreX.put(store, bad, "x") end, [], [
            :invalid_path,
            :invalid_argument
          ])

        assert e.message =~ bad or e.message =~ "path"

        assert_invalid(fn -> ObjectStoreX.get(store, bad) end, [], [
          :invalid_path,
          :invalid_argument
        ])
      end

      # nothing was written
      assert {:ok, [%ObjectStoreX.Meta{location: "exists.txt"}]} = ObjectStoreX.list(store)
    end

    test "delete_many checks every path", %{store: store} do
      assert_invalid(fn -> ObjectStoreX.delete_many(store, "exists.txt") end, "paths")
      assert_invalid(fn -> ObjectStoreX.delete_many(store, ["exists.txt", 5]) end, "paths")
      # a bad list deletes nothing
      assert {:ok, "0123456789", _} = ObjectStoreX.get(store, "exists.txt")
    end
  end

  describe "ranges" do
    test "negative, inverted and malformed ranges are :invalid_argument", %{store: store} do
      for bad <- [
            {-1, 5},
            {0, -1},
            {10, 5},
            {:offset, -1},
            {:suffix, -3},
            {:suffix, :a},
            {:bogus, 1},
            {1.0, 2.0},
            "0-10",
            [0, 10],
            {0, 1, 2}
          ] do
        assert_invalid(fn -> ObjectStoreX.get(store, "exists.txt", range: bad) end, "range")
      end
    end

    test "get_ranges needs a list of valid {first, last} pairs", %{store: store} do
      for bad <- [{0, 1}, "0-1", nil, %{}] do
        assert_invalid(fn -> ObjectStoreX.get_ranges(store, "exists.txt", bad) end, "ranges")
      end

      for bad <- [[{10, 5}], [{0, 1}, {-1, 2}], [{0, 1}, :x], [{:offset, 3}]] do
        assert_invalid(fn -> ObjectStoreX.get_ranges(store, "exists.txt", bad) end, "range")
      end
    end
  end

  describe "options" do
    test "an unknown option is rejected by name", %{store: store} do
      assert_invalid(
        fn -> ObjectStoreX.get(store, "exists.txt", bogus_option: 1) end,
        "bogus_option"
      )

      assert_invalid(fn -> ObjectStoreX.put(store, "a", "b", colour: :red) end, "colour")
      assert_invalid(fn -> ObjectStoreX.head(store, "exists.txt", range: {0, 1}) end, "range")
      assert_invalid(fn -> ObjectStoreX.list(store, recursive: true) end, "recursive")
      assert_invalid(fn -> ObjectStoreX.delete(store, "a", force: true) end, "force")

      assert_invalid(
        fn -> ObjectStoreX.copy(store, "exists.txt", "b", overwrite: true) end,
        "overwrite"
      )

      assert_invalid(fn -> ObjectStoreX.new(:memory, bucket_name: "x") end, "bucket_name")
    end

    test "an option of the wrong type is rejected by name", %{store: store} do
      assert_invalid(fn -> ObjectStoreX.get(store, "exists.txt", head: "yes") end, "head")
      assert_invalid(fn -> ObjectStoreX.get(store, "exists.txt", if_match: 5) end, "if_match")

      assert_invalid(
        fn -> ObjectStoreX.get(store, "exists.txt", if_modified_since: "yesterday") end,
        "if_modified_since"
      )

      assert_invalid(
        fn -> ObjectStoreX.get(store, "exists.txt", if_unmodified_since: ~D[2020-01-01]) end,
        "if_unmodified_since"
      )

      assert_invalid(fn -> ObjectStoreX.get(store, "exists.txt", timeout: -1) end, "timeout")
      assert_invalid(fn -> ObjectStoreX.get(store, "exists.txt", timeout: "5s") end, "timeout")
      assert_invalid(fn -> ObjectStoreX.put(store, "a", "b", mode: :bogus) end, "mode")
      assert_invalid(fn -> ObjectStoreX.put(store, "a", "b", mode: {:update, 5}) end, "mode")
      assert_invalid(fn -> ObjectStoreX.put(store, "a", "b", content_type: 5) end, "content_type")
      assert_invalid(fn -> ObjectStoreX.put(store, "a", "b", metadata: "x") end, "metadata")
      assert_invalid(fn -> ObjectStoreX.put(store, "a", "b", tags: %{"k" => 1}) end, "tags")
      assert_invalid(fn -> ObjectStoreX.list(store, prefix: 5) end, "prefix")
      assert_invalid(fn -> ObjectStoreX.list(store, offset: :x) end, "offset")
      # nothing was written by the rejected puts
      assert {:error, %Error{reason: :not_found}} = ObjectStoreX.head(store, "a")
    end

    test "no options build the same native arguments as the defaults spelled out", %{
      store: store
    } do
      # The no-option case takes a shortcut past the checks; it must agree with them.
      assert ObjectStoreX.Args.get(store, "a", []) ==
               ObjectStoreX.Args.get(store, "a", head: false, range: nil, timeout: :infinity)

      assert ObjectStoreX.Args.put(store, "a", "b", []) ==
               ObjectStoreX.Args.put(store, "a", "b",
                 mode: :overwrite,
                 metadata: %{},
                 tags: %{},
                 timeout: :infinity
               )
    end

    test "options that are not a keyword list", %{store: store} do
      assert_invalid(fn -> ObjectStoreX.get(store, "exists.txt", :nope) end, "option")
      assert_invalid(fn -> ObjectStoreX.get(store, "exists.txt", [1, 2]) end, "option")
      assert_invalid(fn -> ObjectStoreX.put(store, "a", "b", %{mode: :create}) end, "option")
    end

    test "data that is not iodata", %{store: store} do
      for bad <- [:atom, 123, %{}, [1000], ["a", :b], {"a"}] do
        assert_invalid(fn -> ObjectStoreX.put(store, "a", bad) end, "data")
      end
    end

    test "sign_url checks its method and expiry", %{store: store} do
      assert_invalid(fn -> ObjectStoreX.sign_url(store, :bogus, "exists.txt", 60) end, "method")
      assert_invalid(fn -> ObjectStoreX.sign_url(store, "GET", "exists.txt", 60) end, "method")
      assert_invalid(fn -> ObjectStoreX.sign_url(store, :get, "exists.txt", 0) end, "expires")
      assert_invalid(fn -> ObjectStoreX.sign_url(store, :get, "exists.txt", -5) end, "expires")
      assert_invalid(fn -> ObjectStoreX.sign_url(store, :get, "exists.txt", "60") end, "expires")
    end
  end

  describe "bang variants" do
    test "raise ObjectStoreX.Error with the reason of the non-bang function", %{store: store} do
      cases = [
        {fn -> ObjectStoreX.get(store, "missing") end,
         fn -> ObjectStoreX.get!(store, "missing") end},
        {fn -> ObjectStoreX.head(store, "missing") end,
         fn -> ObjectStoreX.head!(store, "missing") end},
        {fn -> ObjectStoreX.get(store, 5) end, fn -> ObjectStoreX.get!(store, 5) end},
        {fn -> ObjectStoreX.get(store, "") end, fn -> ObjectStoreX.get!(store, "") end},
        {fn -> ObjectStoreX.put(:foo, "a", "b") end, fn -> ObjectStoreX.put!(:foo, "a", "b") end},
        {fn -> ObjectStoreX.put_with_result(store, "a//b", "b") end,
         fn -> ObjectStoreX.put_with_result!(store, "a//b", "b") end},
        {fn -> ObjectStoreX.delete(store, "a", x: 1) end,
         fn -> ObjectStoreX.delete!(store, "a", x: 1) end},
        {fn -> ObjectStoreX.copy(store, "missing", "b") end,
         fn -> ObjectStoreX.copy!(store, "missing", "b") end},
        {fn -> ObjectStoreX.rename(store, "missing", "b") end,
         fn -> ObjectStoreX.rename!(store, "missing", "b") end},
        {fn -> ObjectStoreX.copy_if_not_exists(store, "exists.txt", "exists.txt") end,
         fn -> ObjectStoreX.copy_if_not_exists!(store, "exists.txt", "exists.txt") end},
        {fn -> ObjectStoreX.rename_if_not_exists(store, "missing", "b") end,
         fn -> ObjectStoreX.rename_if_not_exists!(store, "missing", "b") end},
        {fn -> ObjectStoreX.get_ranges(store, "exists.txt", [{5, 1}]) end,
         fn -> ObjectStoreX.get_ranges!(store, "exists.txt", [{5, 1}]) end},
        {fn -> ObjectStoreX.delete_many(store, :x) end,
         fn -> ObjectStoreX.delete_many!(store, :x) end},
        {fn -> ObjectStoreX.list(store, prefix: 1) end,
         fn -> ObjectStoreX.list!(store, prefix: 1) end},
        {fn -> ObjectStoreX.list_with_delimiter(store, x: 1) end,
         fn -> ObjectStoreX.list_with_delimiter!(store, x: 1) end},
        {fn -> ObjectStoreX.sign_url(store, :get, "exists.txt", 60) end,
         fn -> ObjectStoreX.sign_url!(store, :get, "exists.txt", 60) end},
        {fn -> ObjectStoreX.new(:nope, []) end, fn -> ObjectStoreX.new!(:nope, []) end},
        {fn -> ObjectStoreX.from_url("ftp://x/y") end,
         fn -> ObjectStoreX.from_url!("ftp://x/y") end}
      ]

      for {plain, bang} <- cases do
        assert {:error, %Error{reason: reason, message: message}} = returned(plain)
        raised = assert_raise Error, bang
        assert raised.reason == reason
        assert raised.message == message
        assert Exception.message(raised) == message
      end
    end

    test "return plainly on success", %{store: store} do
      assert :ok = ObjectStoreX.put!(store, "bang.txt", "ok")
      assert %ObjectStoreX.PutResult{} = ObjectStoreX.put_with_result!(store, "bang.txt", "ok2")
      assert %ObjectStoreX.Meta{size: 3} = ObjectStoreX.head!(store, "bang.txt")
      assert ["ok", "2"] = ObjectStoreX.get_ranges!(store, "bang.txt", [{0, 1}, {2, 2}])
      assert [%ObjectStoreX.Meta{}, %ObjectStoreX.Meta{}] = ObjectStoreX.list!(store)
      assert :ok = ObjectStoreX.copy!(store, "bang.txt", "bang2.txt")
      assert :ok = ObjectStoreX.delete!(store, "bang2.txt")
      assert %ObjectStoreX.Store{backend: :memory} = ObjectStoreX.new!(:memory)
    end
  end

  describe "retryable?/1" do
    test "is false for :not_found and other permanent errors", %{store: store} do
      {:error, not_found} = ObjectStoreX.get(store, "missing")
      assert not_found.reason == :not_found
      refute Error.retryable?(not_found)
      refute Error.retryable?(:not_found)

      {:error, invalid} = ObjectStoreX.get(store, 5)
      refute Error.retryable?(invalid)
      refute Error.retryable?(:invalid_argument)
      refute Error.retryable?(:already_exists)
    end

    test "is true for :timeout and :network_error" do
      assert Error.retryable?(:timeout)
      assert Error.retryable?(:network_error)
    end

    test "a refused connection is a retryable :network_error" do
      {:ok, store} =
        ObjectStoreX.new(:http,
          url: "http://127.0.0.1:1/",
          allow_http: true,
          connect_timeout: 500,
          retry: [max_retries: 0]
        )

      assert {:error, %Error{reason: :network_error} = e} = ObjectStoreX.get(store, "x")
      assert e.retryable
      assert Error.retryable?(e)
    end
  end

  describe "timeouts" do
    test "an op that outlasts timeout: returns :timeout and leaves no message behind" do
      {port, stop} = silent_server()
      on_exit(stop)

      {:ok, store} =
        ObjectStoreX.new(:http,
          url: "http://127.0.0.1:#{port}/",
          allow_http: true,
          retry: [max_retries: 0]
        )

      for op <- [
            fn -> ObjectStoreX.get(store, "slow.bin", timeout: 200) end,
            fn -> ObjectStoreX.put(store, "slow.bin", "data", timeout: 50) end,
            fn -> ObjectStoreX.head(store, "slow.bin", timeout: 1) end,
            fn -> ObjectStoreX.list(store, timeout: 100) end
          ] do
        {elapsed_us, result} = :timer.tc(op)
        assert {:error, %Error{reason: :timeout} = e} = result
        assert e.retryable
        assert Error.retryable?(e)
        assert elapsed_us < 5_000_000, "the timeout took #{div(elapsed_us, 1000)} ms to fire"
        assert drain_mailbox(100) == []
      end
    end

    test "timeout: 0 on a local read never crashes and leaves no message behind" do
      store = TestBackends.store!(:local)
      data = random_bytes(32 * 1_048_576)
      :ok = ObjectStoreX.put(store, "big.bin", data)

      results =
        for _ <- 1..5 do
          result = ObjectStoreX.get(store, "big.bin", timeout: 0)
          assert drain_mailbox(100) == []
          result
        end

      assert Enum.all?(results, fn
               {:error, %Error{reason: :timeout}} -> true
               {:ok, ^data, _} -> true
               _ -> false
             end)

      # reading 32 MiB takes longer than 0 ms: at least one of the five must time out
      assert Enum.any?(results, &match?({:error, %Error{reason: :timeout}}, &1))
      # and the store still works afterwards
      assert {:ok, ^data, _} = ObjectStoreX.get(store, "big.bin", timeout: 30_000)
    end
  end
end
