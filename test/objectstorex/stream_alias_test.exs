defmodule ObjectStoreX.StreamAliasTest do
  # User code that does `alias ObjectStoreX.Stream` shadows Elixir's Stream: the guide's blocks
  # below are written that way, and keep calling Stream.map/2, Stream.into/2, Stream.run/1, ...
  # through ObjectStoreX.Stream. Each block starts with the alias, as user code would.
  use ExUnit.Case, async: true

  alias ObjectStoreX.TestBackends

  @mib 1_048_576

  test "ObjectStoreX.Stream exports every function of Elixir's Stream" do
    # function_exported?/3 does not load the module.
    Code.ensure_loaded!(ObjectStoreX.Stream)

    missing =
      for {name, arity} <- Elixir.Stream.__info__(:functions),
          # Stream is a struct module; its struct functions are not part of the API.
          name not in [:__struct__],
          not function_exported?(ObjectStoreX.Stream, name, arity),
          do: {name, arity}

    assert missing == []

    # ...and delegates to it.
    assert ObjectStoreX.Stream.map([1, 2], &(&1 * 2)) |> Enum.to_list() == [2, 4]
    assert ObjectStoreX.Stream.with_index([:a, :b], 1) |> Enum.to_list() == [a: 1, b: 2]
  end

  for backend <- [:memory, :local] do
    describe "on #{backend}" do
      setup do
        store = TestBackends.store!(unquote(backend))
        dir = TestBackends.tmp_dir!("stream-alias")
        on_exit(fn -> File.rm_rf!(dir) end)
        %{store: store, dir: dir}
      end

      test "download |> Stream.map(&byte_size/1) |> Enum.sum()", %{store: store} do
        :ok = ObjectStoreX.put(store, "large-file.bin", :crypto.strong_rand_bytes(3 * @mib + 7))

        alias ObjectStoreX.Stream

        total =
          Stream.download(store, "large-file.bin", chunk_size: @mib)
          |> Stream.map(&byte_size/1)
          |> Enum.sum()

        assert total == 3 * @mib + 7
      end

      test "download |> Stream.into(File.stream!(tmp)) |> Stream.run()", ctx do
        data = :crypto.strong_rand_bytes(2 * @mib + 3)
        :ok = ObjectStoreX.put(ctx.store, "large-file.bin", data)
        tmp = Path.join(ctx.dir, "local-file.bin")
        store = ctx.store

        alias ObjectStoreX.Stream

        Stream.download(store, "large-file.bin")
        |> Stream.into(File.stream!(tmp))
        |> Stream.run()

        assert File.read!(tmp) == data
      end

      test "Stream.repeatedly |> Stream.take(8) |> Stream.upload", %{store: store} do
        alias ObjectStoreX.Stream

        result =
          Stream.repeatedly(fn -> :crypto.strong_rand_bytes(1_048_576) end)
          |> Stream.take(8)
          |> Stream.upload(store, "x")

        assert result == :ok
        assert {:ok, %ObjectStoreX.Meta{size: 8_388_608}} = ObjectStoreX.head(store, "x")
      end

      test "list_stream |> Stream.map |> Stream.chunk_every(2) |> Stream.each |> Stream.run",
           %{store: store} do
        for i <- 1..5, do: :ok = ObjectStoreX.put(store, "temp/#{i}", "x")
        :ok = ObjectStoreX.put(store, "kept.txt", "k")
        test = self()

        alias ObjectStoreX.Stream

        Stream.list_stream(store, prefix: "temp/")
        |> Stream.map(fn meta -> meta.location end)
        |> Stream.chunk_every(2)
        |> Stream.each(fn batch ->
          {:ok, deleted, _failed} = ObjectStoreX.delete_many(store, batch)
          send(test, {:deleted, deleted})
        end)
        |> Stream.run()

        batches =
          for _ <- 1..3 do
            assert_received {:deleted, n}
            n
          end

        assert Enum.sort(batches) == [1, 2, 2]
        refute_received {:deleted, _}
        assert {:ok, [%ObjectStoreX.Meta{location: "kept.txt"}]} = ObjectStoreX.list(store)
      end

      test "Stream.filter and Stream.with_index over lines", %{store: store} do
        :ok = ObjectStoreX.put(store, "app.log", "ok\nERROR one\nok\nERROR two\n")

        alias ObjectStoreX.Stream

        errors =
          Stream.lines(store, "app.log")
          |> Stream.with_index(1)
          |> Stream.filter(fn {line, _n} -> line =~ "ERROR" end)
          |> Enum.to_list()

        assert errors == [{"ERROR one", 2}, {"ERROR two", 4}]
      end
    end
  end
end
